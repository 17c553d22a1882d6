"""Strict HTTP/1.1 message heads for a reverse proxy at the edge (RFC 9112).

A head is read line by line; every line must end in CRLF, so a bare LF or CR, obs-fold, whitespace
before a colon, a control byte (NUL included) or a malformed request/status line is a BadRequest,
never a guess. Framing follows RFC 9112 6.3 strictly: in a request, Content-Length and
Transfer-Encoding together, a repeated Content-Length, or a Transfer-Encoding other than exactly
``chunked`` are rejected. Re-encoding writes the framing header from the parsed values, so a
``Connection`` header can drop neither the framing nor Host. Bodies live in ``http1_body``.
"""

from __future__ import annotations

import asyncio
import contextlib
import html as html_lib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

HEAD_LIMIT = 65_536  # bytes in a head, and in one line
MAX_FIELDS = 100  # header lines in one head
TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_VALUE = rb"(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"  # no CTL, no NUL, no CR/LF
FIELD_LINE = re.compile(rb"(" + TOKEN + rb"):[\t ]*(" + _VALUE + rb")[\t ]*\r\n")
_FIELD_BLOCK = re.compile(rb"(?:" + TOKEN + rb":[\t ]*" + _VALUE + rb"[\t ]*\r\n)+\r\n")  # every line, then CRLF
_REQUEST_LINE = re.compile(rb"(" + TOKEN + rb") (/[\x21-\x7e]*|\*) (HTTP/1\.[01])\r\n")
_STATUS_LINE = re.compile(rb"(HTTP/1\.[01]) ([1-9][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?\r\n")
_TOKEN = re.compile(TOKEN)
_HOST = re.compile(rb"[A-Za-z0-9\-._~!$&'()*+,;=:\[\]%]*")
_DIGITS = re.compile(rb"[0-9]{1,18}")
# hop-by-hop (RFC 9110 7.6.1) and what only the proxy may say: never forwarded
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"upgrade",
        b"trailer",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"content-length",  # framing: written again from the parsed values
        b"transfer-encoding",
    }
)
# set by the router from the connection it accepted; a client's own values are dropped
EDGE = frozenset({b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-real-ip"})
_NEVER_NAMED = frozenset({b"host"})  # a Connection header may not remove these


class BadRequest(Exception):
    """A message that breaks HTTP/1.1 syntax or framing: the connection can no longer be trusted."""


class BodyTooLarge(Exception):
    """A streamed (chunked) request body went over the size limit."""


@dataclass(slots=True)
class Message:
    start: bytes  # the request line or status line, without CRLF
    headers: list[tuple[bytes, bytes]]
    version: bytes
    method: str = ""
    status: int = 0
    content_length: int | None = None
    is_chunked: bool = False
    transfer_encoding: bytes = b""  # a response's Transfer-Encoding value, kept as the app sent it
    keep_alive: bool = True
    until_close: bool = False  # a response whose body ends when the connection closes
    no_body: bool = False
    connection: frozenset[bytes] = frozenset()  # the Connection header's tokens, lower case
    extra: list[tuple[bytes, bytes]] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    def forwarded(self, client_ip: str, host: str, port: int) -> None:
        """The router is the edge: X-Forwarded-For/Proto/Host come from the accepted connection, and
        a client's Forwarded, X-Forwarded-* and X-Real-IP never reach the app."""
        self.headers = [(k, v) for k, v in self.headers if k.lower() not in EDGE]
        host_header = self.header(b"host")
        self.extra = [
            (b"X-Forwarded-For", client_ip.encode()),
            (b"X-Forwarded-Proto", b"http"),
            (b"X-Forwarded-Host", host_header if host_header else f"{host}:{port}".encode()),
        ]

    def encode_head(self, keep_alive: bool) -> bytes:
        drop = HOP_BY_HOP | (self.connection - _NEVER_NAMED) if self.connection else HOP_BY_HOP
        lines = [self.start]
        lines += [k + b": " + v for k, v in self.headers if k.lower() not in drop]
        if self.transfer_encoding:
            lines.append(b"Transfer-Encoding: " + self.transfer_encoding)
        elif self.content_length is not None:
            lines.append(b"Content-Length: %d" % self.content_length)
        lines += [k + b": " + v for k, v in self.extra]
        lines.append(b"Connection: keep-alive" if keep_alive else b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n"


# --- the router's fast path: one pass from a common head to the head sent on ------------------
# Each returns None for anything but the common case, and the caller then takes the general path
# (parse_head, Message, encode_head), which gives the exact error. When they answer, they answer
# what the general path would send (tests/agent/test_router_fastpath.py holds them to it).

# a field line: a token, a colon, then no control byte but HTAB (so no CR or LF) up to CRLF; the
# value with its optional whitespace around is then what FIELD_LINE accepts
_FIELD_LINES = re.compile(rb"(?:" + TOKEN + rb":[^\x00-\x08\x0a-\x1f\x7f]*\r\n)+")
_SPECIAL_NAMES = sorted(HOP_BY_HOP | EDGE | {b"host", b"close"}, key=lambda name: -len(name))
_SPECIAL_LINE = re.compile(rb"\r\n(" + b"|".join(_SPECIAL_NAMES).replace(b"-", rb"\-") + rb"):([^\r]*)")
_FAST_CONNECTION = {b"keep-alive": False, b"close": True, b"keep-alive, close": True, b"close, keep-alive": True}
_DROPPED = frozenset({b"keep-alive", b"proxy-connection", b"te", b"proxy-authorization", b"proxy-authenticate"})
_FRAMING_FIELDS = frozenset({b"content-length", b"connection"})


def _framing_field(name: bytes, value: bytes, length: bytes | None, close: bool) -> tuple[bytes | None, bool] | None:
    """A Content-Length or Connection line of a head on the fast path: the length and the close
    so far with it, or None to decline the head (a second length, a length not all digits, a
    Connection other than keep-alive/close, or after one that said close)."""
    if name == b"content-length":
        if length is not None or not _DIGITS.fullmatch(value):
            return None
        return value, close
    tokens = _FAST_CONNECTION.get(value.lower())
    if tokens is None or close:
        return None
    return length, tokens


def _fast_block(head: bytes, nl: int) -> bool:
    """Whether the field lines of ``head`` (which ends in CRLFCRLF, its start line ``head[:nl]``)
    are 1 to MAX_FIELDS lines that each match FIELD_LINE (a bare CR or LF, obs-fold, a space
    before the colon or a control byte fail it). One regex pass over the block, whatever its size."""
    return _FIELD_LINES.fullmatch(head, nl, len(head) - 2) is not None and head.count(b"\n", nl) <= MAX_FIELDS + 1


def _cut(head: bytes, nl: int, spans: list[tuple[int, int]]) -> list[bytes]:
    """The start line and the field lines of ``head`` without the lines in ``spans``, each piece
    without its final CRLF (to be joined with CRLF)."""
    out, pos = [head[: nl - 2]], nl - 2
    for start, end in spans:
        if start > pos:
            out.append(head[pos + 2 : start])
        pos = end
    if pos < len(head) - 4:
        out.append(head[pos + 2 : -4])
    return out


def fast_request_head(head: bytes, nl: int, forwarded_for: bytes) -> tuple[bytes, bytes, int, bool] | None:
    """A common HTTP/1.1 request head (``head`` up to CRLFCRLF, its request line ``head[:nl]``;
    Host once, at most one Content-Length, no Transfer-Encoding, Connection only keep-alive or
    close): the head to send to an instance (its field lines as they came, less the hop-by-hop,
    framing and X-Forwarded-* ones, then the framing and the router's X-Forwarded-* headers), its
    method, body length and whether the client keeps the connection."""
    known = _request_head_fast(head, nl)
    if known is None:
        return None
    before, after, method, size, keep = known
    return before + forwarded_for + after, method, size, keep


def _request_head_fast(head: bytes, nl: int) -> tuple[bytes, bytes, bytes, int, bool] | None:
    rm = _REQUEST_LINE.fullmatch(head, 0, nl)
    if rm is None or rm[3] != b"HTTP/1.1" or not _fast_block(head, nl):
        return None
    host = length = None
    close = False
    spans = []
    for m in _SPECIAL_LINE.finditer(head.lower(), nl - 2):
        name = m[1]
        value = head[m.start(2) : m.end(2)].strip(b" \t")
        if name == b"host":
            if host is not None or not _HOST.fullmatch(value):
                return None
            host = value
            continue
        if name in _FRAMING_FIELDS:
            framing = _framing_field(name, value, length, close)
            if framing is None:
                return None
            length, close = framing
        elif name not in EDGE and name not in _DROPPED:
            return None  # transfer-encoding, upgrade, trailer, a field named "close"
        spans.append(m.span())
    if not host:  # none, or empty: the general path says what to do
        return None
    out = _cut(head, nl, spans)
    size = int(length) if length is not None else 0
    if length is not None:
        out.append(b"Content-Length: %d" % size)
    out.append(b"X-Forwarded-For: ")
    after = b"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: " + host + b"\r\nConnection: keep-alive\r\n\r\n"
    return b"\r\n".join(out), after, rm[1], size, not close


def fast_response_head(head: bytes, nl: int, keep_alive: bool) -> tuple[int, bytes, int | None, bool] | None:
    """A common HTTP/1.1 response head (``head`` up to CRLFCRLF, its status line ``head[:nl]``;
    not 1xx, no Transfer-Encoding, at most one Content-Length, Connection only keep-alive or close):
    its status, the head to send to the client (its field lines as they came, less the hop-by-hop
    and framing ones, then the framing and Connection), its Content-Length, and whether the instance
    keeps the connection."""
    known = _response_head_fast(head, nl)
    if known is None:
        return None
    status, out, size, keep = known
    return status, out + (b"Connection: keep-alive\r\n\r\n" if keep_alive else b"Connection: close\r\n\r\n"), size, keep


def _response_head_fast(head: bytes, nl: int) -> tuple[int, bytes, int | None, bool] | None:
    sm = _STATUS_LINE.fullmatch(head, 0, nl)
    if sm is None or sm[1] != b"HTTP/1.1" or head[9:10] == b"1" or not _fast_block(head, nl):
        return None
    length = None
    close = False
    spans = []
    for m in _SPECIAL_LINE.finditer(head.lower(), nl - 2):
        name = m[1]
        if name in EDGE:
            continue  # only a request's are the router's to set
        value = head[m.start(2) : m.end(2)].strip(b" \t")
        if name in _FRAMING_FIELDS:
            framing = _framing_field(name, value, length, close)
            if framing is None:
                return None
            length, close = framing
        elif name not in _DROPPED:
            return None  # host (checked by the general path), transfer-encoding, upgrade, trailer, "close"
        spans.append(m.span())
    out = _cut(head, nl, spans)
    size = None
    if length is not None:
        size = int(length)
        out.append(b"Content-Length: %d" % size)
    return int(sm[2]), b"\r\n".join(out) + b"\r\n", size, not close


def _bare(line: bytes) -> bool:
    return line[-2:-1] != b"\r" or b"\r" in line[:-2]


async def read_head(
    reader: asyncio.StreamReader, request: bool, on_start: Callable[[], None] | None = None
) -> Message | None:
    """The next message head, or None when the peer closed the connection cleanly before one.
    ``on_start`` is called once the start line is in (the router's header timeout begins then).

    Three reads whatever the number of fields: the start line (so a head with bare LF line ends
    is refused at once, not after a timeout), two bytes (CRLF: no fields), then up to CRLFCRLF.
    A response head (from an instance) is read in one go and checked the same way."""
    if not request:
        return await _response_head(reader)
    try:
        start = await reader.readuntil(b"\n")
        for _ in range(8):  # RFC 9112 2.2: empty lines before a request line are ignored
            if start != b"\r\n":
                break
            start = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("request head too large") from exc
    if _bare(start):
        raise BadRequest(f"line not ended by CRLF (a bare LF or CR): {start[:80]!r}")
    if on_start is not None:
        on_start()
    block = await reader.readexactly(2)
    if block != b"\r\n":
        if b"\r" in block or b"\n" in block:
            raise BadRequest(f"a bare LF or CR after the start line: {block!r}")
        try:
            block += await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise BadRequest("request head too large") from exc
    return parse_head(start, block, request)


async def _response_head(reader: asyncio.StreamReader) -> Message | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("response head too large") from exc
    cut = raw.index(b"\r\n") + 2
    if _bare(raw[:cut]) or b"\n" in raw[: cut - 1]:
        raise BadRequest(f"line not ended by CRLF (a bare LF or CR): {raw[:80]!r}")
    return parse_head(raw[:cut], raw[cut:], request=False)


def parse_head(start: bytes, block: bytes, request: bool) -> Message:
    """A head from its start line and its field block, both with their CRLFs (pure: no I/O)."""
    if block == b"\r\n":
        headers: list[tuple[bytes, bytes]] = []
    elif _FIELD_BLOCK.fullmatch(block):
        headers = FIELD_LINE.findall(block)
        if len(headers) > MAX_FIELDS:
            raise BadRequest(f"more than {MAX_FIELDS} header fields")
    else:
        bad = next((ln for ln in block.split(b"\r\n") if ln and not FIELD_LINE.fullmatch(ln + b"\r\n")), block)
        raise BadRequest(
            f"malformed header line {bad[:80]!r} (a bare LF or CR, obs-fold, space before ':', or a control byte)"
        )
    if request:
        rm = _REQUEST_LINE.fullmatch(start)
        if rm is None:
            raise BadRequest(f"malformed request line {start[:80]!r}")
        msg = Message(start[:-2], headers, rm[3], method=rm[1].decode("ascii"))
    else:
        sm = _STATUS_LINE.fullmatch(start)
        if sm is None:
            raise ConnectionError(f"malformed status line {start[:80]!r}")
        msg = Message(start[:-2], headers, sm[1], status=int(sm[2]))
    _framing(msg, request)
    return msg


def _framing(msg: Message, request: bool) -> None:
    lengths, encodings, hosts, connection = [], [], [], []
    for name, value in msg.headers:
        lname = name.lower()
        if lname == b"content-length":
            lengths.append(value)
        elif lname == b"transfer-encoding":
            encodings.append(value)
        elif lname == b"host":
            hosts.append(value)
        elif lname == b"connection":
            connection += [t.strip().lower() for t in value.split(b",") if t.strip()]
    if connection:
        if not all(_TOKEN.fullmatch(t) for t in connection):
            raise BadRequest("invalid Connection header")
        msg.connection = frozenset(connection)
    if lengths:
        if len(lengths) > 1 or not _DIGITS.fullmatch(lengths[0]):
            raise BadRequest(f"invalid Content-Length {b', '.join(lengths)[:80]!r}: send one decimal length")
        msg.content_length = int(lengths[0])
    if encodings:
        if lengths:
            raise BadRequest("Content-Length and Transfer-Encoding together: send one of them")
        if msg.version == b"HTTP/1.0":
            raise BadRequest("Transfer-Encoding in an HTTP/1.0 message")
        codings = [c.strip().lower() for e in encodings for c in e.split(b",")]
        if request and (len(encodings) > 1 or codings != [b"chunked"]):
            raise BadRequest(f"unsupported Transfer-Encoding {b', '.join(encodings)[:80]!r}: only 'chunked'")
        msg.is_chunked = codings[-1] == b"chunked"
        msg.transfer_encoding = b"chunked" if request else b", ".join(encodings)
        msg.until_close = not msg.is_chunked  # a response's body then runs until close (RFC 9112 6.3)
    if request and (len(hosts) > 1 or (msg.version == b"HTTP/1.1" and not hosts)):
        raise BadRequest("an HTTP/1.1 request needs exactly one Host header")
    if hosts and not _HOST.fullmatch(hosts[0]):
        raise BadRequest(f"invalid Host {hosts[0][:80]!r}")
    if msg.version == b"HTTP/1.0":
        msg.keep_alive = b"keep-alive" in msg.connection
    else:
        msg.keep_alive = b"close" not in msg.connection
    if not request and msg.content_length is None and not msg.is_chunked:
        msg.until_close = True


_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def simple_response_bytes(
    status: int, text: str, close: bool, headers: Sequence[tuple[str, str]] = (), html: bool = False
) -> bytes:
    """A whole response the router answers itself (an error, maintenance), head and body."""
    if html:
        body = (
            f"<!doctype html><title>Maintenance</title><h1>Down for maintenance</h1><p>{html_lib.escape(text)}</p>"
        ).encode()
        ctype = "text/html; charset=utf-8"
    else:
        body, ctype = (text + "\n").encode(), "text/plain; charset=utf-8"
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
        f"Content-Type: {ctype}",
        f"Content-Length: {len(body)}",
        "Connection: " + ("close" if close else "keep-alive"),
    ]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def simple_response(
    writer: asyncio.StreamWriter,
    status: int,
    text: str,
    close: bool,
    headers: Sequence[tuple[str, str]] = (),
    html: bool = False,
) -> None:
    writer.write(simple_response_bytes(status, text, close, headers, html))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
