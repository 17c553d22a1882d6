"""Just enough HTTP/1.1 for a reverse proxy: read a message head, re-encode it without hop-by-hop
headers, and copy a body by its framing (Content-Length, chunked, or until close)."""

from __future__ import annotations

import asyncio
import contextlib
import html as html_lib
from collections.abc import Sequence
from dataclasses import dataclass, field

HEAD_LIMIT = 65_536
COPY_CHUNK = 65_536
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade", b"trailer"}


class BadRequest(Exception):
    pass


class BodyTooLarge(Exception):
    """A streamed (chunked) request body went over the size limit."""


@dataclass
class Message:
    start: bytes  # the request line or status line
    headers: list[tuple[bytes, bytes]]
    version: bytes
    method: str = ""
    status: int = 0
    content_length: int | None = None
    is_chunked: bool = False
    keep_alive: bool = True
    until_close: bool = False  # a response whose body ends when the connection closes
    no_body: bool = False
    extra: list[tuple[bytes, bytes]] = field(default_factory=list)

    def forwarded(self, client_ip: str, host: str, port: int) -> None:
        prior = [v for k, v in self.headers if k.lower() == b"x-forwarded-for"]
        self.headers = [(k, v) for k, v in self.headers if k.lower() not in (b"x-forwarded-for", b"x-forwarded-proto")]
        chain = b", ".join([*prior, client_ip.encode()])
        self.extra = [(b"X-Forwarded-For", chain), (b"X-Forwarded-Proto", b"http")]
        if not any(k.lower() == b"x-forwarded-host" for k, _ in self.headers):
            host_header = next((v for k, v in self.headers if k.lower() == b"host"), f"{host}:{port}".encode())
            self.extra.append((b"X-Forwarded-Host", host_header))

    def encode_head(self, keep_alive: bool) -> bytes:
        # hop-by-hop: the fixed set, and every header the Connection header names (RFC 9110 7.6.1)
        named = {t.strip().lower() for k, v in self.headers if k.lower() == b"connection" for t in v.split(b",")}
        drop = HOP_BY_HOP | named
        lines = [self.start]
        lines += [k + b": " + v for k, v in self.headers if k.lower() not in drop]
        lines += [k + b": " + v for k, v in self.extra]
        lines.append(b"Connection: keep-alive" if keep_alive else b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def discard_body(self, reader: asyncio.StreamReader) -> None:
        sink = _Sink()
        await copy_body(reader, sink, self)


class _Sink:
    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass


async def read_head(reader: asyncio.StreamReader, request: bool) -> Message | None:
    """The next message head, or None when the peer closed the connection cleanly before one."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("request head too large") from exc
    lines = raw[:-4].split(b"\r\n")
    start = lines[0]
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise BadRequest(f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip()))
    msg = Message(start, headers, b"")
    parts = start.split(b" ", 2)
    if request:
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise BadRequest(f"malformed request line {start[:80]!r}")
        msg.method, msg.version = parts[0].decode("latin-1"), parts[2]
    else:
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ConnectionError(f"malformed status line {start[:80]!r}")
        msg.version, msg.status = parts[0], int(parts[1])
    connection = b""
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-length":
            if not value.isdigit() or (msg.content_length is not None and msg.content_length != int(value)):
                raise BadRequest("invalid Content-Length")
            msg.content_length = int(value)
        elif lname == b"transfer-encoding":
            msg.is_chunked = value.lower().endswith(b"chunked")
        elif lname == b"connection":
            connection = value.lower()
    if msg.is_chunked:
        msg.content_length = None
    if msg.version == b"HTTP/1.0":
        msg.keep_alive = b"keep-alive" in connection
    else:
        msg.keep_alive = b"close" not in connection
    if not request and msg.content_length is None and not msg.is_chunked:
        msg.until_close = True
    return msg


async def read_body(reader: asyncio.StreamReader, msg: Message) -> bytes:
    """A Content-Length body read whole (callers keep it small)."""
    if not msg.content_length:
        return b""
    return await reader.readexactly(msg.content_length)


async def copy_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter | _Sink, msg: Message, limit: int | None = None
) -> None:
    """Copy one message body by its framing; a chunked body over ``limit`` bytes raises BodyTooLarge."""
    if msg.no_body:
        if msg.until_close:
            msg.until_close = False
        return
    if msg.is_chunked:
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            writer.write(size_line)
            try:
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError as exc:
                raise BadRequest(f"malformed chunk size {size_line[:40]!r}") from exc
            total += size
            if limit is not None and total > limit:
                raise BodyTooLarge
            if size == 0:
                while True:  # trailers, then the empty line
                    line = await reader.readuntil(b"\r\n")
                    writer.write(line)
                    if line == b"\r\n":
                        return
            await _copy_exact(reader, writer, size + 2)
    elif msg.content_length is not None:
        await _copy_exact(reader, writer, msg.content_length)
    elif msg.until_close:
        while chunk := await reader.read(COPY_CHUNK):
            writer.write(chunk)
            await writer.drain()


async def _copy_exact(reader: asyncio.StreamReader, writer: asyncio.StreamWriter | _Sink, size: int) -> None:
    while size > 0:
        chunk = await reader.read(min(size, COPY_CHUNK))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", size)
        writer.write(chunk)
        size -= len(chunk)
        if size > 0:
            await writer.drain()


async def simple_response(
    writer: asyncio.StreamWriter,
    status: int,
    text: str,
    close: bool,
    headers: Sequence[tuple[str, str]] = (),
    html: bool = False,
) -> None:
    reason = {
        400: "Bad Request",
        413: "Content Too Large",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }
    if html:
        body = (
            f"<!doctype html><title>Maintenance</title><h1>Down for maintenance</h1><p>{html_lib.escape(text)}</p>"
        ).encode()
        ctype = "text/html; charset=utf-8"
    else:
        body, ctype = (text + "\n").encode(), "text/plain; charset=utf-8"
    lines = [
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}",
        f"Content-Type: {ctype}",
        f"Content-Length: {len(body)}",
        "Connection: " + ("close" if close else "keep-alive"),
    ]
    lines += [f"{k}: {v}" for k, v in headers]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
