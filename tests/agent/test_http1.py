"""http1 and http1_body: message heads, body framing (Content-Length, chunked with trailers, until
close), hop-by-hop headers and the X-Forwarded-* headers the router sets. The strictness that
closes request smuggling is tested here at the parser and over sockets in test_smuggling.py."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.agent.http1 import HEAD_LIMIT, BadRequest, Message, read_head, simple_response
from conveyor.agent.http1_body import Sink, SinkTimeout, SourceClosed, SourceTimeout, copy_body


def stream(data: bytes, eof: bool = True, limit: int = HEAD_LIMIT) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


class Collector:
    """Stands in for a StreamWriter: keeps what was written."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.drains = 0

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        self.drains += 1


async def request_head(raw: bytes) -> Message:
    msg = await read_head(stream(raw), request=True)
    assert msg is not None
    return msg


async def response_head(raw: bytes) -> Message:
    msg = await read_head(stream(raw), request=False)
    assert msg is not None
    return msg


def header_names(head: bytes) -> list[bytes]:
    return [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n")[1:] if b":" in line]


# --- reading heads -----------------------------------------------------------------------------


async def test_request_head_is_parsed() -> None:
    msg = await request_head(
        b"POST /api/echo?x=1 HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\nX-Empty:\r\n"
        b"Content-Type:  text/plain  \r\n\r\nhello"
    )
    assert msg.method == "POST"
    assert msg.version == b"HTTP/1.1"
    assert msg.start == b"POST /api/echo?x=1 HTTP/1.1"
    assert msg.headers == [
        (b"Host", b"shop.test"),
        (b"Content-Length", b"5"),
        (b"X-Empty", b""),
        (b"Content-Type", b"text/plain"),
    ]
    assert msg.content_length == 5
    assert not msg.is_chunked
    assert msg.keep_alive
    assert not msg.until_close  # a request without a length has no body, it never runs until close


async def test_request_head_leaves_the_body_in_the_reader() -> None:
    reader = stream(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: a\r\n\r\n")
    first = await read_head(reader, request=True)
    assert first is not None
    assert await reader.readexactly(5) == b"hello"
    second = await read_head(reader, request=True)
    assert second is not None
    assert second.method == "GET"
    assert await read_head(reader, request=True) is None


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"HTTP/1.1", None, True),
        (b"HTTP/1.1", b"close", False),
        (b"HTTP/1.1", b"Keep-Alive", True),
        (b"HTTP/1.1", b"TE, Close", False),
        (b"HTTP/1.0", None, False),
        (b"HTTP/1.0", b"keep-alive", True),
    ],
)
async def test_keep_alive_follows_version_and_connection_header(
    version: bytes, connection: bytes | None, keep_alive: bool
) -> None:
    raw = b"GET / " + version + b"\r\nHost: a\r\n"
    if connection is not None:
        raw += b"Connection: " + connection + b"\r\n"
    msg = await request_head(raw + b"\r\n")
    assert msg.keep_alive is keep_alive


async def test_response_head_with_content_length() -> None:
    msg = await response_head(b"HTTP/1.1 201 Created\r\nContent-Length: 12\r\n\r\n")
    assert (msg.status, msg.version, msg.content_length) == (201, b"HTTP/1.1", 12)
    assert not msg.until_close
    assert msg.keep_alive


async def test_response_head_chunked() -> None:
    msg = await response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert msg.is_chunked
    assert msg.content_length is None
    assert not msg.until_close


async def test_response_without_length_runs_until_close() -> None:
    msg = await response_head(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    assert msg.until_close
    assert msg.status == 200
    assert not msg.keep_alive  # HTTP/1.0 without keep-alive


async def test_response_status_line_without_reason() -> None:
    msg = await response_head(b"HTTP/1.1 204\r\n\r\n")
    assert msg.status == 204


async def test_clean_close_before_a_head_is_none() -> None:
    assert await read_head(stream(b""), request=True) is None
    assert await read_head(stream(b"\r\n"), request=True) is None  # whitespace only, still clean


async def test_close_in_the_middle_of_a_head_is_an_error() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        await read_head(stream(b"GET / HTTP/1.1\r\nHost: a\r\n"), request=True)


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /\r\n\r\n",  # HTTP/0.9 style, no version
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / FTP/1.1\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",  # two spaces
        b"GET / HTTP/1.1\r\nNoColonHere\r\n\r\n",
        b"GET / HTTP/1.1\r\n: value\r\n\r\n",  # empty name
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",  # whitespace before the colon (request smuggling vector)
        b"GET / HTTP/1.1\r\nHost: a\r\n folded: x\r\n\r\n",  # obsolete line folding
        b"GET / HTTP/1.1\r\nHost: a\nContent-Length: 5\r\n\r\n",  # bare LF inside the head
        b"GET / HTTP/1.1\nHost: a\n\n",  # bare LF only: refused at the first line, no waiting
        b"GET / HTTP/1.1\r\nHost: a\rX-Other: 1\r\n\r\n",  # bare CR
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Nul: a\x00b\r\n\r\n",  # NUL in a value
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Ctl: a\x1bb\r\n\r\n",  # another control byte
        b"GET / HTTP/1.1\r\nHost: a\r\nX\x00Nul: a\r\n\r\n",  # NUL in a name
        b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n",  # NUL in the target
        b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",  # absolute-form: only origin-form is served
        b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",  # a method that is not a token
        b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: a b\r\nHost: a\r\n\r\n",  # a Connection value that is not tokens
    ],
)
async def test_malformed_request_lines_are_bad_requests(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        await read_head(stream(raw), request=True)


async def test_a_head_over_the_limit_is_a_bad_request() -> None:
    raw = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
    with pytest.raises(BadRequest, match="too large"):
        await read_head(stream(raw, limit=1024), request=True)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",  # bare LF after the status line
        b"HTTP/1.1 200 OK\r\nX: y\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
)
async def test_a_malformed_response_head_is_refused(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        await read_head(stream(raw), request=False)


@pytest.mark.parametrize(
    "raw",
    [b"HTTP/1.1 OK\r\n\r\n", b"HTTP/2 200 OK\r\n\r\n", b"garbage\r\n\r\n", b"HTTP/1.1 2x0 OK\r\n\r\n"],
)
async def test_malformed_status_line_is_a_connection_error(raw: bytes) -> None:
    with pytest.raises(ConnectionError, match="malformed status line"):
        await read_head(stream(raw), request=False)


# --- Content-Length and Transfer-Encoding --------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [[b"5", b"6"], [b"abc"], [b"-1"], [b"+5"], [b"5, 5"], [b"0x10"], [b""]],
)
async def test_invalid_or_conflicting_content_length_is_a_bad_request(values: list[bytes]) -> None:
    raw = b"POST / HTTP/1.1\r\n" + b"".join(b"Content-Length: " + v + b"\r\n" for v in values) + b"\r\n"
    with pytest.raises(BadRequest, match="Content-Length"):
        await read_head(stream(raw), request=True)


async def test_repeated_content_length_is_a_bad_request_even_when_equal() -> None:
    with pytest.raises(BadRequest, match="Content-Length"):
        await request_head(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n")


async def test_content_length_with_transfer_encoding_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="together"):
        await request_head(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n")


@pytest.mark.parametrize(
    "values",
    [[b"gzip, chunked"], [b"chunked, identity"], [b"xchunked"], [b"chunked", b"chunked"], [b"identity"], [b"chunked;"]],
)
async def test_request_transfer_encoding_must_be_exactly_chunked(values: list[bytes]) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"Transfer-Encoding: " + v + b"\r\n" for v in values)
    with pytest.raises(BadRequest, match="Transfer-Encoding"):
        await request_head(raw + b"\r\n")


async def test_request_chunked_is_case_insensitive_and_forwarded_canonically() -> None:
    msg = await request_head(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tChunked \r\n\r\n")
    assert msg.is_chunked and msg.content_length is None
    assert b"\r\nTransfer-Encoding: chunked\r\n" in msg.encode_head(keep_alive=True)


async def test_response_transfer_codings_end_in_chunked_or_run_until_close() -> None:
    gz = await response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
    assert gz.is_chunked and not gz.until_close
    assert b"Transfer-Encoding: gzip, chunked\r\n" in gz.encode_head(keep_alive=True)
    odd = await response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert not odd.is_chunked and odd.until_close
    with pytest.raises(BadRequest, match="together"):
        await response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a/b@c\r\n\r\n",
    ],
)
async def test_host_must_be_one_valid_value(raw: bytes) -> None:
    with pytest.raises(BadRequest, match="Host"):
        await read_head(stream(raw), request=True)


async def test_http10_without_host_is_accepted() -> None:
    msg = await request_head(b"GET / HTTP/1.0\r\n\r\n")
    assert msg.version == b"HTTP/1.0" and not msg.keep_alive


# --- bodies --------------------------------------------------------------------------------------


async def test_chunked_body_is_copied_in_canonical_form_with_trailers() -> None:
    body = (
        b'5\r\nhello\r\n1A;name=value ; q="a;b"\r\n'
        + b"z" * 26
        + b"\r\n000\r\nX-Checksum: abc123\r\nContent-Length: 9\r\nX-Other: 1\r\n\r\n"
    )
    reader = stream(body + b"NEXT")
    msg = await response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    out = Collector()
    await copy_body(reader, out, msg)
    # extensions are dropped, sizes written again, a framing header in the trailers is dropped
    assert bytes(out.data) == (
        b"5\r\nhello\r\n1a\r\n" + b"z" * 26 + b"\r\n0\r\nX-Checksum: abc123\r\nX-Other: 1\r\n\r\n"
    )
    assert await reader.read() == b"NEXT"  # stops exactly at the end of the message


@pytest.mark.parametrize(
    "body",
    [
        b"0x5\r\nhello\r\n0\r\n\r\n",  # a 0x prefix
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",  # leading space
        b"5 5\r\nhello\r\n0\r\n\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",  # whitespace after the size without an extension
        b"\r\nhello\r\n0\r\n\r\n",  # no size at all
        b"g\r\nhello\r\n0\r\n\r\n",
        b"1" + b"0" * 16 + b"\r\n",  # 17 hex digits: a size no body needs
        b"5\nhello\r\n0\r\n\r\n",  # bare LF after the size
        b"5\rhello\r\n0\r\n\r\n",  # bare CR
        b"5\r\nhelloXX0\r\n\r\n",  # the data is not followed by CRLF
        b"3\r\nhello\r\n0\r\n\r\n",  # a wrong size: the data runs on
        b"5;\r\nhello\r\n0\r\n\r\n",  # an extension without a name
        b'5;a="x\r\nhello\r\n0\r\n\r\n',  # an unterminated quoted string
        b"5;a\x00b\r\nhello\r\n0\r\n\r\n",  # NUL in an extension
        b"5\r\nhello\r\n0\r\nBad Trailer\r\n\r\n",
        b"5\r\nhello\r\n0\r\n folded: x\r\n\r\n",
        b"1;" + b"e" * 5000 + b"\r\nx\r\n0\r\n\r\n",  # an extension over the line limit
    ],
)
async def test_invalid_chunked_framing_is_a_bad_request(body: bytes) -> None:
    msg = await request_head(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(BadRequest):
        await copy_body(stream(body), Collector(), msg)


class Stuck(Collector):
    """A writer whose receiver never takes anything in."""

    async def drain(self) -> None:
        await asyncio.Event().wait()


async def test_a_receiver_that_takes_nothing_in_is_the_sink_s_fault() -> None:
    msg = await response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n")
    with pytest.raises(SinkTimeout):
        await copy_body(stream(b"x" * 200_000), Stuck(), msg, write_timeout=0.05)


async def test_chunk_extensions_are_capped_per_body() -> None:
    msg = await request_head(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    many = b"".join(b"1;e=" + b"v" * 1000 + b"\r\nx\r\n" for _ in range(20)) + b"0\r\n\r\n"
    with pytest.raises(BadRequest, match="extensions"):
        await copy_body(stream(many), Collector(), msg)


async def test_a_body_cut_short_or_stalled_is_the_source_s_fault() -> None:
    msg = await request_head(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
    with pytest.raises(SourceClosed):
        await copy_body(stream(b"0123"), Collector(), msg)
    with pytest.raises(SourceTimeout):
        await copy_body(stream(b"0123", eof=False), Collector(), msg, read_timeout=0.05)


async def test_chunked_body_without_trailers() -> None:
    body = b"3\r\nabc\r\n0\r\n\r\n"
    reader = stream(body + b"rest")
    out = Collector()
    msg = await request_head(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    await copy_body(reader, out, msg)
    assert bytes(out.data) == body
    assert await reader.read() == b"rest"


async def test_large_chunked_body_is_copied_whole() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    chunks = [payload[i : i + 100_000] for i in range(0, len(payload), 100_000)]
    body = b"".join(b"%x\r\n" % len(c) + c + b"\r\n" for c in chunks) + b"0\r\n\r\n"
    out = Collector()
    msg = await response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    await copy_body(stream(body), out, msg)
    assert bytes(out.data) == body


async def test_content_length_body_is_copied_exactly() -> None:
    reader = stream(b"0123456789NEXT")
    out = Collector()
    msg = await response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    await copy_body(reader, out, msg)
    assert bytes(out.data) == b"0123456789"
    assert await reader.read() == b"NEXT"


async def test_truncated_content_length_body_is_an_error() -> None:
    msg = await response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    with pytest.raises(SourceClosed):
        await copy_body(stream(b"0123"), Collector(), msg)


async def test_until_close_body_is_copied_to_the_end() -> None:
    payload = b"x" * 200_000 + b"END"
    msg = await response_head(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    out = Collector()
    await copy_body(stream(payload), out, msg)
    assert bytes(out.data) == payload


async def test_no_body_response_reads_nothing() -> None:
    """A response to HEAD (or a 204/304) has no body even without a length: nothing is read."""
    msg = await response_head(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    msg.no_body = True
    reader = stream(b"NEXT", eof=False)
    await asyncio.wait_for(copy_body(reader, Collector(), msg), 1)
    assert not msg.until_close
    assert await reader.readexactly(4) == b"NEXT"


async def test_discard_body_consumes_the_body() -> None:
    reader = stream(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    first = await read_head(reader, request=True)
    assert first is not None
    await copy_body(reader, Sink(), first)
    second = await read_head(reader, request=True)
    assert second is not None
    assert second.start == b"GET /next HTTP/1.1"


# --- re-encoding ---------------------------------------------------------------------------------


async def test_hop_by_hop_headers_are_removed() -> None:
    msg = await request_head(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nKeep-Alive: timeout=5\r\n"
        b"Proxy-Connection: keep-alive\r\nTE: trailers\r\nUPGRADE: websocket\r\ntrailer: X-Sum\r\n"
        b"Accept: */*\r\nX-Request-Id: 42\r\n\r\n"
    )
    head = msg.encode_head(keep_alive=True)
    assert head.startswith(b"GET / HTTP/1.1\r\n")
    assert head.endswith(b"\r\n\r\n")
    names = header_names(head)
    for hop in (b"keep-alive", b"proxy-connection", b"te", b"upgrade", b"trailer"):
        assert hop not in names
    assert names.count(b"connection") == 1
    assert b"Connection: keep-alive\r\n" in head
    assert b"Host: a\r\n" in head
    assert b"Accept: */*\r\n" in head
    assert b"X-Request-Id: 42\r\n" in head


async def test_encode_head_says_close_when_asked() -> None:
    msg = await response_head(b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
    head = msg.encode_head(keep_alive=False)
    assert head == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


async def test_headers_named_by_connection_are_hop_by_hop() -> None:
    msg = await request_head(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Hop-Secret\r\nX-Hop-Secret: 1\r\n\r\n")
    assert b"x-hop-secret" not in header_names(msg.encode_head(keep_alive=True))


async def test_forwarded_headers_are_set_at_the_edge_never_taken_from_the_client() -> None:
    msg = await request_head(
        b"GET / HTTP/1.1\r\nHost: shop.test:8080\r\nX-Forwarded-For: 203.0.113.7\r\n"
        b"x-forwarded-for: 10.0.0.1, 10.0.0.2\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n"
        b"X-Real-IP: 10.9.9.9\r\nForwarded: for=10.1.1.1;host=evil.example\r\n\r\n"
    )
    msg.forwarded("192.0.2.9", "127.0.0.1", 9000)
    head = msg.encode_head(keep_alive=True)
    names = header_names(head)
    for name in (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"):
        assert names.count(name) == 1, name
    assert b"x-real-ip" not in names and b"forwarded" not in names
    assert b"X-Forwarded-For: 192.0.2.9\r\n" in head
    assert b"X-Forwarded-Proto: http\r\n" in head
    assert b"X-Forwarded-Host: shop.test:8080\r\n" in head
    assert b"evil" not in head and b"10." not in head


async def test_forwarded_without_a_host() -> None:
    msg = await request_head(b"GET / HTTP/1.0\r\n\r\n")
    msg.forwarded("127.0.0.1", "127.0.0.1", 9000)
    head = msg.encode_head(keep_alive=True)
    assert b"X-Forwarded-For: 127.0.0.1\r\n" in head
    assert b"X-Forwarded-Proto: http\r\n" in head
    assert b"X-Forwarded-Host: 127.0.0.1:9000\r\n" in head


async def test_connection_cannot_remove_framing_or_host_but_removes_what_it_names() -> None:
    msg = await request_head(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nX-Hop: 1\r\n"
        b"Connection: Content-Length, Host, X-Hop\r\n\r\n"
    )
    head = msg.encode_head(keep_alive=True)
    assert b"\r\nHost: a\r\n" in head
    assert b"\r\nContent-Length: 4\r\n" in head
    assert b"x-hop" not in header_names(head)


async def test_proxy_authorization_is_never_forwarded() -> None:
    msg = await request_head(b"GET / HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic c2VjcmV0\r\n\r\n")
    assert b"proxy-authorization" not in header_names(msg.encode_head(keep_alive=True))


# --- simple responses ----------------------------------------------------------------------------


async def _served(status: int, text: str, close: bool, **kwargs: object) -> tuple[Message, bytes]:
    """Run simple_response against a real socket pair and read back what a client would see."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await simple_response(writer, status, text, close, **kwargs)  # type: ignore[arg-type]
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    raw = await reader.read()
    writer.close()
    server.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    msg = await response_head(head + b"\r\n\r\n")
    return msg, body


async def test_simple_response_text() -> None:
    msg, body = await _served(503, "no healthy instance", close=False)
    assert msg.start == b"HTTP/1.1 503 Service Unavailable"
    assert msg.content_length == len(body)
    assert body == b"no healthy instance\n"
    assert msg.keep_alive
    assert (b"Content-Type", b"text/plain; charset=utf-8") in msg.headers


async def test_simple_response_html_with_headers() -> None:
    msg, body = await _served(503, "back <soon> & ok", close=True, headers=[("Retry-After", "30")], html=True)
    assert msg.content_length == len(body)
    assert not msg.keep_alive
    assert (b"Retry-After", b"30") in msg.headers
    assert (b"Content-Type", b"text/html; charset=utf-8") in msg.headers
    assert body.startswith(b"<!doctype html>")
    assert b"back &lt;soon&gt; &amp; ok" in body


async def test_simple_response_reason_phrases() -> None:
    for status, reason in [(400, b"Bad Request"), (413, b"Content Too Large"), (502, b"Bad Gateway"), (599, b"Error")]:
        msg, _ = await _served(status, "x", close=True)
        assert msg.start == b"HTTP/1.1 %d " % status + reason
