"""Message bodies by their framing (RFC 9112 6-7): Content-Length, chunked, or until close.

A chunked body is validated and written again in canonical form: each chunk-size line must be 1 to
16 hex digits with well-formed extensions (dropped; at most CHUNK_EXT_LIMIT bytes of them in one
body), each chunk's data must be followed by exactly CRLF, and trailer lines follow the same rules
as header lines (framing and hop-by-hop names are dropped). Anything else is a BadRequest.

Failures on the side a body is read from (it closed, broke, or sent nothing for ``read_timeout``
seconds) raise SourceClosed / SourceTimeout, so the router can tell a client's fault from an app's.
"""

from __future__ import annotations

import asyncio
import re
from typing import Protocol

from conveyor.agent.http1 import FIELD_LINE, HEAD_LIMIT, HOP_BY_HOP, TOKEN, BadRequest, BodyTooLarge, Message

COPY_CHUNK = 65_536
CHUNK_LINE_LIMIT = 4_096
CHUNK_EXT_LIMIT = 16_384
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})((?:[\t ]*;[\t ]*"
    + TOKEN
    + rb"(?:[\t ]*=[\t ]*(?:"
    + TOKEN
    + rb"|"
    + _QUOTED
    + rb"))?)*)\r\n"
)
_NOT_IN_TRAILERS = HOP_BY_HOP | {b"host"}


class SourceClosed(Exception):
    """The side a body was read from closed or broke the connection in the middle of it."""


class SourceTimeout(SourceClosed):
    """The side a body was read from sent nothing for the read timeout."""


class SinkTimeout(Exception):
    """The side a body was written to took nothing in for the write timeout (a client that does
    not read its response)."""


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


class TimedWriter:
    """A writer whose drain raises SinkTimeout after ``timeout`` seconds without progress."""

    def __init__(self, writer: Writer, timeout: float) -> None:
        self.writer, self.timeout = writer, timeout

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self.writer.drain()
        except TimeoutError as exc:
            raise SinkTimeout(f"the receiver took nothing in for {self.timeout:g}s") from exc


class Sink:
    """A writer that throws everything away (a body the router skips)."""

    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass


async def copy_body(
    reader: asyncio.StreamReader,
    writer: Writer,
    msg: Message,
    limit: int | None = None,
    read_timeout: float | None = None,
    write_timeout: float | None = None,
) -> None:
    """Copy one message body by its framing; a chunked body over ``limit`` bytes raises BodyTooLarge."""
    sink = TimedWriter(writer, write_timeout) if write_timeout is not None else writer
    if msg.no_body:
        if msg.until_close:
            msg.until_close = False
        return
    if msg.is_chunked:
        await _copy_chunked(reader, sink, limit, read_timeout)
    elif msg.content_length is not None:
        await _copy_exact(reader, sink, msg.content_length, read_timeout)
    elif msg.until_close:
        while chunk := await _read(reader, COPY_CHUNK, read_timeout, eof_ok=True):
            sink.write(chunk)
            await sink.drain()


async def _copy_chunked(reader: asyncio.StreamReader, writer: Writer, limit: int | None, timeout: float | None) -> None:
    total = extensions = 0
    while True:
        line = await _line(reader, timeout)
        m = _CHUNK_LINE.fullmatch(line) if len(line) <= CHUNK_LINE_LIMIT else None
        if m is None:
            raise BadRequest(f"invalid chunk size line {line[:40]!r}: send hex digits, then CRLF")
        extensions += len(m[2])
        if extensions > CHUNK_EXT_LIMIT:
            raise BadRequest(f"chunk extensions over {CHUNK_EXT_LIMIT} bytes")
        size = int(m[1], 16)
        total += size
        if limit is not None and total > limit:
            raise BodyTooLarge
        if size == 0:
            break
        writer.write(b"%x\r\n" % size)
        await _copy_exact(reader, writer, size, timeout)
        if await _exactly(reader, 2, timeout) != b"\r\n":
            raise BadRequest("chunk data not followed by CRLF: the chunk size is wrong")
        writer.write(b"\r\n")
        await writer.drain()
    writer.write(b"0\r\n")
    seen = 0
    while (line := await _line(reader, timeout)) != b"\r\n":
        seen += len(line)
        fm = FIELD_LINE.fullmatch(line)
        if fm is None or seen > HEAD_LIMIT:
            raise BadRequest(f"malformed trailer line {line[:80]!r}")
        if fm[1].lower() not in _NOT_IN_TRAILERS:
            writer.write(line)
    writer.write(b"\r\n")


async def _line(reader: asyncio.StreamReader, timeout: float | None) -> bytes:
    try:
        async with asyncio.timeout(timeout):
            line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("chunk size line too long") from exc
    except TimeoutError as exc:
        raise SourceTimeout(f"nothing sent for {timeout:g}s in the middle of a body") from exc
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise SourceClosed("the connection closed in the middle of a body") from exc
    if line[-2:-1] != b"\r" or b"\r" in line[:-2]:
        raise BadRequest(f"chunked framing line not ended by CRLF: {line[:40]!r}")
    return line


async def _exactly(reader: asyncio.StreamReader, size: int, timeout: float | None) -> bytes:
    try:
        async with asyncio.timeout(timeout):
            return await reader.readexactly(size)
    except TimeoutError as exc:
        raise SourceTimeout(f"nothing sent for {timeout:g}s in the middle of a body") from exc
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise SourceClosed("the connection closed in the middle of a body") from exc


async def _read(reader: asyncio.StreamReader, size: int, timeout: float | None, eof_ok: bool = False) -> bytes:
    try:
        async with asyncio.timeout(timeout):
            data = await reader.read(size)
    except TimeoutError as exc:
        raise SourceTimeout(f"nothing sent for {timeout:g}s in the middle of a body") from exc
    except ConnectionError as exc:
        raise SourceClosed("the connection broke in the middle of a body") from exc
    if not data and not eof_ok:
        raise SourceClosed("the connection closed in the middle of a body")
    return data


async def _copy_exact(reader: asyncio.StreamReader, writer: Writer, size: int, timeout: float | None) -> None:
    while size > 0:
        chunk = await _read(reader, min(size, COPY_CHUNK), timeout)
        writer.write(chunk)
        size -= len(chunk)
        if size > 0:
            await writer.drain()


async def read_body(reader: asyncio.StreamReader, msg: Message, read_timeout: float | None = None) -> bytes:
    """A Content-Length body read whole (callers keep it small)."""
    if not msg.content_length:
        return b""
    return await _exactly(reader, msg.content_length, read_timeout)
