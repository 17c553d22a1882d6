"""Request smuggling, desync and slow clients against the built-in router, over raw sockets.

The backend is a deliberately lenient HTTP/1.1 server (it accepts bare LF, takes the last
Content-Length, and treats any Transfer-Encoding that mentions chunked as chunked), as many app
servers are: a request the router lets through ambiguously would show up here as a second request.
The corpus follows h11's test suite and PortSwigger's request smuggling research (CL.TE, TE.CL,
TE.TE with obfuscated Transfer-Encoding, malformed lengths, bare LF/CR, obs-fold, NUL, chunk
framing). Every case must get 400 and a closed connection, and the backend never sees the request
that was smuggled inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest

from conveyor.agent.edge import ClientLimits
from conveyor.agent.router import BuiltinRouter
from conveyor.agent.routing import Backend
from conveyor.devserver import free_port

HOST = "127.0.0.1"
TIMEOUT = 10.0
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
N = b"%d" % len(SMUGGLED)
BIG = 16 * 1024 * 1024  # the size of the app's /big answer  # a Content-Length that covers exactly the smuggled request


async def eventually(check: Callable[[], object], timeout: float = TIMEOUT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class LenientApp:
    """A backend that parses the way lax servers do, and records every request it believes it got."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.connections = 0
        self.open: set[asyncio.StreamWriter] = set()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> LenientApp:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def backend(self) -> Backend:
        return Backend("app", HOST, self.port, "v1")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open.add(writer)
        try:
            while True:
                lines = []
                while (line := (await reader.readuntil(b"\n")).rstrip(b"\r\n")) or not lines:
                    if line:
                        lines.append(line)
                path = lines[0].split(b" ")[1].decode("latin-1")
                self.paths.append(path)
                fields = {}
                for raw in lines[1:]:
                    name, _, value = raw.partition(b":")
                    fields[name.strip().lower()] = value.strip()  # the last one wins
                if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
                    while size := int((await reader.readuntil(b"\n")).split(b";")[0].strip() or b"0", 16):
                        await reader.readexactly(size + 2)
                    while (await reader.readuntil(b"\n")).strip():
                        pass
                elif b"content-length" in fields:
                    await reader.readexactly(int(fields[b"content-length"]))
                body = b"x" * BIG if path == "/big" else json.dumps({"path": path}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError, ValueError, IndexError):
            return
        finally:
            self.open.discard(writer)
            writer.close()

    async def close(self) -> None:
        if self._server:
            self._server.close()
        for writer in list(self.open):
            writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    lines = head.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(fields.get("content-length", "0")))
    return int(lines[0].split(" ")[1]), fields, body


async def closed(reader: asyncio.StreamReader) -> bool:
    with contextlib.suppress(ConnectionError):
        return await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    return True


@pytest.fixture
async def app() -> AsyncIterator[LenientApp]:
    made = await LenientApp().start()
    yield made
    await made.close()


async def started(app: LenientApp, limits: ClientLimits | None = None) -> BuiltinRouter:
    router = BuiltinRouter("web", HOST, free_port(), limits=limits or ClientLimits())
    await router.start()
    await router.set_backends([app.backend()])
    return router


@pytest.fixture
async def router(app: LenientApp) -> AsyncIterator[BuiltinRouter]:
    made = await started(app)
    yield made
    await made.stop()


POST = b"POST /attack HTTP/1.1\r\nHost: x\r\n"

# the request head itself is refused: nothing reaches the app
HEAD_CORPUS = {
    "CL.TE": POST + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    "TE.CL": POST + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n" + SMUGGLED + b"\r\n0\r\n\r\n",
    "TE.TE xchunked": POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "TE.TE chunked + xchunked": POST
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "TE.TE tab duplicates": POST + b"Transfer-Encoding:\tchunked\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
    "TE.TE chunked, identity": POST + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "TE identity, chunked (not only chunked)": POST + b"Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
    "TE.TE quoted": POST + b'Transfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n',
    "TE.TE x": POST + b"Transfer-Encoding: x\r\nContent-Length: " + N + b"\r\n\r\n" + SMUGGLED,
    "TE.TE space before colon": POST + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "TE.TE leading space (obs-fold)": POST + b" Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "TE.TE bare LF before it": POST + b"X: X\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "TE.TE name and value on two lines": POST + b"Transfer-Encoding\r\n: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "TE.TE vertical tab": POST + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "TE.TE NUL": POST + b"Transfer-Encoding: chunked\x00\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "TE in HTTP/1.0": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "CL +5": POST + b"Content-Length: +38\r\n\r\n" + SMUGGLED,
    "CL 0x5": POST + b"Content-Length: 0x26\r\n\r\n" + SMUGGLED,
    "CL 5 5": POST + b"Content-Length: 38 38\r\n\r\n" + SMUGGLED,
    "CL list": POST + b"Content-Length: 38, 38\r\n\r\n" + SMUGGLED,
    "CL negative": POST + b"Content-Length: -1\r\n\r\n" + SMUGGLED,
    "CL exponent": POST + b"Content-Length: 1e1\r\n\r\n" + SMUGGLED,
    "CL over 64 bits": POST + b"Content-Length: 18446744073709551654\r\n\r\n" + SMUGGLED,
    "CL empty": POST + b"Content-Length:\r\n\r\n" + SMUGGLED,
    "CL vertical tab": POST + b"Content-Length:\x0b0\r\n\r\n" + SMUGGLED,
    "CL differing": POST + b"Content-Length: 0\r\nContent-Length: " + N + b"\r\n\r\n" + SMUGGLED,
    "CL duplicate equal": POST + b"Content-Length: " + N + b"\r\nContent-Length: " + N + b"\r\n\r\n" + SMUGGLED,
    "CL space before colon": POST + b"Content-Length : 38\r\n\r\n" + SMUGGLED,
    "CL bare LF smuggles a second one": POST
    + b"Content-Length: 0\r\nX: y\nContent-Length: "
    + N
    + b"\r\n\r\n"
    + SMUGGLED,
    "CL after bare CR": POST + b"X: y\rContent-Length: " + N + b"\r\n\r\n" + SMUGGLED,
    "CL obs-fold": POST + b"X-Fold: a\r\n Content-Length: " + N + b"\r\n\r\n" + SMUGGLED,
    "CL tab fold": POST + b"X-Fold: a\r\n\tContent-Length: " + N + b"\r\n\r\n" + SMUGGLED,
    "bare LF line ends only": b"GET / HTTP/1.1\nHost: x\n\n" + SMUGGLED,
    "bare LF after the request line": b"GET / HTTP/1.1\nHost: x\r\n\r\n" + SMUGGLED,
    "NUL in a value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n" + SMUGGLED,
    "NUL in the target": b"GET /a\x00 HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED,
    "two Hosts": b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n" + SMUGGLED,
    "no Host": b"GET / HTTP/1.1\r\n\r\n" + SMUGGLED,
    "Host with a space": b"GET / HTTP/1.1\r\nHost: x y\r\n\r\n" + SMUGGLED,
    "request line with two spaces": b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED,
    "absolute-form target": b"GET http://other/ HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED,
    "HTTP/1.2": b"GET / HTTP/1.2\r\nHost: x\r\n\r\n" + SMUGGLED,
    "space before the first header": b"GET / HTTP/1.1\r\n Host: x\r\n\r\n" + SMUGGLED,
}

# the head is valid and forwarded; the chunked body is not: the app connection is closed mid-request
BODY_CORPUS = {
    "chunk size 0x5": b"0x5\r\nhello\r\n0\r\n\r\n",
    "chunk size +5": b"+5\r\nhello\r\n0\r\n\r\n",
    "chunk size with a space": b"5 \r\nhello\r\n0\r\n\r\n",
    "chunk size empty": b"\r\nhello\r\n0\r\n\r\n",
    "chunk size over 64 bits": b"1" + b"0" * 16 + b"\r\n" + SMUGGLED,
    "chunk size bare LF": b"5\nhello\r\n0\r\n\r\n" + SMUGGLED,
    "chunk ext bare LF (TERM.EXT)": b"2;\nxx\r\n45\r\n0\r\n\r\n" + SMUGGLED,
    "chunk ext LF in a quoted string": b'5;a="x\ny"\r\nhello\r\n0\r\n\r\n' + SMUGGLED,
    "chunk ext without a name": b"5;\r\nhello\r\n0\r\n\r\n",
    "chunk ext NUL": b"5;a=b\x00\r\nhello\r\n0\r\n\r\n",
    "chunk ext over the line limit": b"5;a=" + b"b" * 5000 + b"\r\nhello\r\n0\r\n\r\n",
    "chunk data without CRLF": b"5\r\nhelloXX" + SMUGGLED,
    "chunk size too small": b"3\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
    "chunk data with a bare LF after it": b"5\r\nhello\n0\r\n\r\n" + SMUGGLED,
    "trailer obs-fold": b"0\r\nX-T: a\r\n b\r\n\r\n" + SMUGGLED,
    "trailer bare LF": b"0\r\nX-T: a\nContent-Length: 5\r\n\r\n" + SMUGGLED,
}


async def attack(router: BuiltinRouter, payload: bytes) -> tuple[int, bool]:
    reader, writer = await asyncio.open_connection(HOST, router.port)
    try:
        writer.write(payload)
        await writer.drain()
        status, fields, _ = await read_response(reader)
        assert fields.get("connection") == "close"
        return status, await closed(reader)
    finally:
        writer.close()


@pytest.mark.parametrize("case", list(HEAD_CORPUS))
async def test_a_smuggling_head_gets_400_and_a_close_and_nothing_reaches_the_app(
    case: str, router: BuiltinRouter, app: LenientApp
) -> None:
    assert await attack(router, HEAD_CORPUS[case]) == (400, True)
    assert app.paths == [], "the app saw a request the router should have refused"
    assert router.counters.get("v1") is None or router.counters["v1"].failed == 0


@pytest.mark.parametrize("case", list(BODY_CORPUS))
async def test_a_malformed_chunked_body_gets_400_and_is_not_an_instance_failure(
    case: str, router: BuiltinRouter, app: LenientApp
) -> None:
    head = POST + b"Transfer-Encoding: chunked\r\n\r\n"
    assert await attack(router, head + BODY_CORPUS[case]) == (400, True)
    assert app.paths in ([], ["/attack"]), app.paths  # never a second request
    await eventually(lambda: not app.open, what="the router to close the app connection it sent a partial body on")
    counters = router.counters.get("v1")
    assert counters is None or (counters.failed, counters.requests) == (0, 0)


async def test_a_huge_but_valid_chunk_size_gets_413(router: BuiltinRouter, app: LenientApp) -> None:
    head = POST + b"Transfer-Encoding: chunked\r\n\r\n"
    assert await attack(router, head + b"ffffffffffffffff\r\n" + SMUGGLED) == (413, True)
    assert "/smuggled" not in app.paths


async def test_a_skipped_chunked_body_is_held_to_the_size_limit(app: LenientApp) -> None:
    router = BuiltinRouter("web", HOST, free_port(), max_body=1000, limits=ClientLimits())
    await router.start()  # no instance in the rotation: the body is read and thrown away
    try:
        head = POST + b"Transfer-Encoding: chunked\r\n\r\n"
        assert await attack(router, head + b"3e8\r\n" + b"z" * 1000 + b"\r\n" + b"1\r\nz\r\n") == (413, True)
    finally:
        await router.stop()


async def test_lengths_with_optional_whitespace_are_sent_on_canonically(router: BuiltinRouter, app: LenientApp) -> None:
    """` 5 ` is a valid Content-Length (OWS around the value, RFC 9110 5.5): it is forwarded as `5`."""
    reader, writer = await asyncio.open_connection(HOST, router.port)
    writer.write(POST + b"Content-Length: \t" + N + b" \r\n\r\n" + SMUGGLED + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(reader))[2] == b'{"path": "/attack"}'
    assert (await read_response(reader))[2] == b'{"path": "/next"}'
    writer.close()
    assert app.paths == ["/attack", "/next"]


ATTACKS = {
    "Connection names Content-Length": POST
    + b"Content-Length: "
    + N
    + b"\r\nConnection: Content-Length\r\n\r\n"
    + SMUGGLED,
    "Connection names Transfer-Encoding": POST
    + b"Transfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n%x\r\n" % len(SMUGGLED)
    + SMUGGLED
    + b"\r\n0\r\n\r\n",
    "Connection names Host": b"GET /attack HTTP/1.1\r\nHost: x\r\nConnection: Host\r\n\r\n",
    "CL.TE": POST
    + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % (len(SMUGGLED) + 5)
    + SMUGGLED,
    "bare LF second Content-Length": POST + b"X: y\nContent-Length: " + N + b"\r\n\r\n" + SMUGGLED,
    "two Transfer-Encodings": POST
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: "
    + N
    + b"\r\n\r\n"
    + SMUGGLED,
}


async def test_an_attacker_cannot_desync_a_pooled_app_connection_shared_with_a_victim(
    router: BuiltinRouter, app: LenientApp
) -> None:
    victim_reader, victim_writer = await asyncio.open_connection(HOST, router.port)

    async def victim(path: str) -> str:
        victim_writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, _, body = await read_response(victim_reader)
        assert status == 200
        return str(json.loads(body)["path"])

    assert await victim("/warm") == "/warm"  # one pooled app connection now exists
    for i, (name, payload) in enumerate(ATTACKS.items()):
        reader, writer = await asyncio.open_connection(HOST, router.port)
        writer.write(payload)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            await asyncio.wait_for(reader.read(65_536), 2)
        writer.close()
        await eventually(
            lambda: len(router._pools["app"].idle) == 1,
            what=f"{name}: the app connection back in the pool ({app.paths})",
        )
        assert await victim(f"/victim-{i}") == f"/victim-{i}", f"{name}: the victim got another request's answer"
    victim_writer.close()
    assert "/smuggled" not in app.paths
    assert app.connections == 1, "every request went over the one pooled connection"


# --- slow clients --------------------------------------------------------------------------------


async def test_slowloris_partial_heads_get_408_and_are_closed(app: LenientApp) -> None:
    router = await started(app, ClientLimits(header_timeout=0.5))
    try:
        conns = [await asyncio.open_connection(HOST, router.port) for _ in range(100)]
        for _, writer in conns:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never the rest
        silent = await asyncio.open_connection(HOST, router.port)  # sends nothing at all
        # (not "all 101 held at once": on a busy machine opening them takes longer than the timeout,
        # and the first are rightly closed before the last are accepted)
        for reader, _ in conns:
            status, _, body = await read_response(reader)
            assert (status, body) == (408, b"the request head did not arrive in time\n")
            assert await closed(reader)
        assert await closed(silent[0])  # closed without an answer
        await eventually(lambda: not router._clients, what="the router to drop every slow connection")
        assert app.paths == []
    finally:
        await router.stop()


async def test_an_idle_keep_alive_connection_is_closed(app: LenientApp) -> None:
    router = await started(app, ClientLimits(idle_timeout=0.3))
    try:
        reader, writer = await asyncio.open_connection(HOST, router.port)
        writer.write(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        began = time.monotonic()
        assert await closed(reader)  # no 408 on an idle connection: it just closes
        assert time.monotonic() - began < 5
    finally:
        await router.stop()


@pytest.mark.parametrize(
    "request_bytes",
    [
        POST + b"Content-Length: 10\r\n\r\n0123",
        POST + b"Content-Length: 100000\r\n\r\n" + b"x" * 70_000,  # a streamed body
        POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhel",
    ],
)
async def test_a_stalled_body_gets_408_and_is_not_an_instance_failure(app: LenientApp, request_bytes: bytes) -> None:
    router = await started(app, ClientLimits(body_timeout=0.3))
    try:
        reader, writer = await asyncio.open_connection(HOST, router.port)
        writer.write(request_bytes)
        assert (await read_response(reader))[0] == 408
        assert await closed(reader)
        await eventually(lambda: not app.open, what="the app connection to close")
        counters = router.counters.get("v1")
        assert counters is None or counters.failed == 0
    finally:
        await router.stop()


async def test_a_client_that_does_not_read_its_response_is_cut_off(app: LenientApp) -> None:
    router = await started(app, ClientLimits(body_timeout=0.3))
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((HOST, router.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read the answer
        await eventually(lambda: app.paths == ["/big"], what="the request to reach the app")
        await eventually(lambda: not router._clients, what="the router to give up on the client")
        await eventually(lambda: not app.open, what="the router to close the app connection too")
        received = 0
        with contextlib.suppress(ConnectionError):
            while chunk := await asyncio.wait_for(reader.read(1 << 20), TIMEOUT):
                received += len(chunk)
        assert received < BIG
        counters = router.counters.get("v1")
        assert counters is None or counters.failed == 0  # the client's doing, not the instance's
        writer.close()
    finally:
        await router.stop()


async def test_connections_per_address_are_capped(app: LenientApp) -> None:
    router = await started(app, ClientLimits(max_connections_per_ip=3))
    try:
        held = [await asyncio.open_connection(HOST, router.port) for _ in range(3)]
        await eventually(lambda: len(router._clients) == 3, what="three connections")
        reader, writer = await asyncio.open_connection(HOST, router.port)
        status, _, body = await read_response(reader)
        assert (status, body) == (503, b"too many connections from this address now\n")
        assert await closed(reader)
        held[0][1].close()
        await eventually(lambda: len(router._clients) == 2, what="a held connection to close")
        reader, writer = await asyncio.open_connection(HOST, router.port)
        writer.write(b"GET /fits HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reader))[2] == b'{"path": "/fits"}'
        writer.close()
        for _, w in held[1:]:
            w.close()
    finally:
        await router.stop()


def test_client_limits_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ClientLimits.from_settings() == ClientLimits()  # the documented defaults
    monkeypatch.setenv("CONVEYOR_ROUTER_HEADER_TIMEOUT", "2.5")
    monkeypatch.setenv("CONVEYOR_ROUTER_IDLE_TIMEOUT", "7")
    monkeypatch.setenv("CONVEYOR_ROUTER_BODY_TIMEOUT", "3")
    monkeypatch.setenv("CONVEYOR_ROUTER_MAX_CONNECTIONS_PER_IP", "9")
    assert ClientLimits.from_settings() == ClientLimits(2.5, 7.0, 3.0, 9)
    assert BuiltinRouter("web", HOST, 1).limits == ClientLimits(2.5, 7.0, 3.0, 9)
