"""The built-in router over real sockets: keep-alive and pooling, round robin, streaming bodies,
limits, maintenance, draining, stale pooled connections, dead backends and the per-release counters.

The backends are tiny asyncio HTTP servers written here, so a test can see exactly what reached
them (headers, bodies, connections) and answer in any framing."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from conveyor.agent import router as router_module
from conveyor.agent.router import BuiltinRouter
from conveyor.agent.routing import LATENCY_BUCKETS, Backend, ReleaseCounters
from conveyor.devserver import free_port

HOST = "127.0.0.1"
TIMEOUT = 10.0


async def eventually(check: Callable[[], object], timeout: float = TIMEOUT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


# --- a small, independent HTTP/1.1 reader for both sides of the tests ----------------------------


@dataclass
class Msg:
    start: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    conn: int = 0  # the backend connection it arrived on (backends only)

    @property
    def status(self) -> int:
        return int(self.start.split(" ")[1])

    @property
    def method(self) -> str:
        return self.start.split(" ")[0]

    @property
    def path(self) -> str:
        return self.start.split(" ")[1]

    def get(self, name: str) -> str | None:
        values = self.all(name)
        return values[-1] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def _fields(lines: list[bytes]) -> list[tuple[str, str]]:
    out = []
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        out.append((name, value.strip()))
    return out


async def read_msg(reader: asyncio.StreamReader, request: bool, head_request: bool = False) -> Msg | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    lines = raw[:-4].split(b"\r\n")
    msg = Msg(lines[0].decode("latin-1"), _fields(lines[1:]))
    chunked = "chunked" in (msg.get("transfer-encoding") or "").lower()
    length = msg.get("content-length")
    no_body = not request and (head_request or msg.status in (204, 304) or msg.status < 200)
    if no_body:
        return msg
    if chunked:
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                trailer_lines = []
                while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                    trailer_lines.append(line[:-2])
                msg.trailers = _fields(trailer_lines)
                break
            body += await reader.readexactly(size)
            assert await reader.readexactly(2) == b"\r\n"
        msg.body = bytes(body)
    elif length is not None:
        msg.body = await reader.readexactly(int(length))
    elif not request:
        msg.body = await reader.read()  # until close
    return msg


def response_bytes(
    status: int = 200, body: bytes = b"", headers: list[tuple[str, str]] | None = None, close: bool = False
) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *[f"{k}: {v}" for k, v in headers or []]]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- backends ------------------------------------------------------------------------------------

Handler = Callable[["Upstream", Msg, asyncio.StreamWriter], Awaitable[bool]]


async def default_handler(up: Upstream, req: Msg, writer: asyncio.StreamWriter) -> bool:
    """Answer with the backend's name; echo facts about the request as JSON."""
    info = {"backend": up.name, "path": req.path, "length": len(req.body)}
    info["sha256"] = hashlib.sha256(req.body).hexdigest()
    writer.write(response_bytes(200, json.dumps(info).encode(), [("Content-Type", "application/json")]))
    return True


class Upstream:
    """A backend on a free port that records every connection and request it gets."""

    def __init__(self, name: str, handler: Handler = default_handler, idle_timeout: float | None = None) -> None:
        self.name, self.handler, self.idle_timeout = name, handler, idle_timeout
        self.connections = 0
        self.requests: list[Msg] = []
        self.idle_closed = 0
        self.per_conn: dict[int, int] = {}
        self.open: set[asyncio.StreamWriter] = set()
        self.release = asyncio.Event()  # what slow handlers wait for
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> Upstream:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def backend(self, release: str = "v1") -> Backend:
        return Backend(self.name, HOST, self.port, release)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        self.open.add(writer)
        self.per_conn[conn] = 0
        try:
            while True:
                try:
                    req = await asyncio.wait_for(read_msg(reader, request=True), self.idle_timeout)
                except TimeoutError:
                    self.idle_closed += 1
                    return
                if req is None:
                    return
                req.conn = conn
                self.per_conn[conn] += 1
                self.requests.append(req)
                keep = await self.handler(self, req, writer)
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.open.discard(writer)
            writer.close()

    async def close(self) -> None:
        if self._server:
            self._server.close()
        for writer in list(self.open):
            writer.close()


class Client:
    """One client connection to the router, spoken to byte by byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection(HOST, port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, head_request: bool = False) -> Msg:
        msg = await asyncio.wait_for(read_msg(self.reader, request=False, head_request=head_request), TIMEOUT)
        assert msg is not None, "the router closed the connection instead of answering"
        return msg

    async def request(
        self, method: str = "GET", path: str = "/", body: bytes = b"", headers: list[tuple[str, str]] | None = None
    ) -> Msg:
        lines = [f"{method} {path} HTTP/1.1", "Host: shop.test", *[f"{k}: {v}" for k, v in headers or []]]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return await self.response(head_request=method == "HEAD")

    async def at_eof(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), TIMEOUT) == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@dataclass
class Rig:
    router: BuiltinRouter
    upstreams: list[Upstream] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)

    async def upstream(self, name: str, handler: Handler = default_handler, **kwargs: float) -> Upstream:
        up = await Upstream(name, handler, **kwargs).start()
        self.upstreams.append(up)
        return up

    async def client(self) -> Client:
        client = await Client.open(self.router.port)
        self.clients.append(client)
        return client


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    router = BuiltinRouter("web", HOST, free_port(), max_body=10 * 1024 * 1024)
    await router.start()
    made = Rig(router)
    yield made
    for client in made.clients:
        await client.close()
    for up in made.upstreams:
        up.release.set()
    await made.router.stop()
    for up in made.upstreams:
        await up.close()
    await eventually(lambda: not made.router._clients, what="the router's client connections to close")
    await eventually(lambda: not any(up.open for up in made.upstreams), what="the backends' connections to close")


async def router_with_limit(rig: Rig, max_body: int) -> BuiltinRouter:
    await rig.router.stop()
    rig.router = BuiltinRouter("web", HOST, free_port(), max_body=max_body)
    await rig.router.start()
    return rig.router


def body_of(msg: Msg) -> dict[str, object]:
    result: dict[str, object] = json.loads(msg.body)
    return result


# --- keep-alive, pooling, round robin ------------------------------------------------------------


async def test_keep_alive_requests_share_one_pooled_backend_connection(rig: Rig) -> None:
    up = await rig.upstream("a")
    await rig.router.set_backends([up.backend()])
    client = await rig.client()
    for i in range(5):
        resp = await client.request("GET", f"/n{i}")
        assert resp.status == 200
        assert resp.get("connection") == "keep-alive"
        assert body_of(resp)["path"] == f"/n{i}"
    assert [r.path for r in up.requests] == [f"/n{i}" for i in range(5)]
    assert up.connections == 1, "the router must reuse its pooled backend connection"
    assert up.per_conn == {1: 5}
    assert rig.router.counters["v1"].requests == 5


async def test_pipelined_requests_are_answered_in_order(rig: Rig) -> None:
    up = await rig.upstream("a")
    await rig.router.set_backends([up.backend()])
    client = await rig.client()
    await client.send(b"".join(f"GET /p{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(3)))
    paths = [body_of(await client.response())["path"] for _ in range(3)]
    assert paths == ["/p0", "/p1", "/p2"]


async def test_round_robin_over_two_backends(rig: Rig) -> None:
    a, b = await rig.upstream("a"), await rig.upstream("b")
    await rig.router.set_backends([a.backend(), b.backend()])
    client = await rig.client()
    served = [body_of(await client.request("GET", f"/{i}"))["backend"] for i in range(10)]
    assert served.count("a") == served.count("b") == 5
    assert all(x != y for x, y in itertools.pairwise(served)), served
    assert a.connections == b.connections == 1


async def test_forwarded_headers_are_set_at_the_edge_and_hop_by_hop_headers_dropped(rig: Rig) -> None:
    async def with_hop_headers(up: Upstream, req: Msg, writer: asyncio.StreamWriter) -> bool:
        writer.write(response_bytes(200, b"ok", [("Keep-Alive", "timeout=5"), ("X-App", "1"), ("Upgrade", "h2c")]))
        return True

    up = await rig.upstream("a", with_hop_headers)
    await rig.router.set_backends([up.backend()])
    client = await rig.client()
    resp = await client.request(
        "GET",
        "/",
        headers=[
            ("X-Forwarded-For", "203.0.113.7, 10.0.0.1"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"),
            ("X-Real-IP", "203.0.113.7"),
            ("Forwarded", "for=203.0.113.7;host=evil.example"),
            ("Proxy-Authorization", "Basic c2VjcmV0"),
            ("Connection", "keep-alive, Host"),
            ("Keep-Alive", "timeout=30"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("X-Request-Id", "abc"),
        ],
    )
    assert resp.status == 200
    seen = up.requests[0]
    assert seen.all("x-forwarded-for") == ["127.0.0.1"]  # the edge: the client's chain is not trusted
    assert seen.all("x-forwarded-proto") == ["http"]
    assert seen.all("x-forwarded-host") == ["shop.test"]
    assert seen.get("x-request-id") == "abc"
    assert seen.all("host") == ["shop.test"]  # `Connection: Host` does not remove it
    for hop in ("keep-alive", "proxy-connection", "te", "x-real-ip", "forwarded", "proxy-authorization"):
        assert seen.get(hop) is None, hop
    assert seen.all("connection") == ["keep-alive"]
    assert resp.get("x-app") == "1"
    assert resp.get("keep-alive") is None
    assert resp.get("upgrade") is None


# --- streaming bodies ----------------------------------------------------------------------------


async def test_large_post_body_is_streamed_to_the_backend(rig: Rig) -> None:
    up = await rig.upstream("a")
    await rig.router.set_backends([up.backend()])
    payload = bytes(range(256)) * (5 * 4096)  # 5 MiB
    client = await rig.client()
    resp = await client.request("POST", "/upload", payload, [("Content-Type", "application/octet-stream")])
    assert resp.status == 200
    assert body_of(resp) == {
        "backend": "a",
        "path": "/upload",
        "length": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    assert up.requests[0].get("content-length") == str(len(payload))
    again = await client.request("GET", "/after")  # the connection is still in step
    assert body_of(again)["path"] == "/after"


async def test_chunked_request_body_is_relayed(rig: Rig) -> None:
    up = await rig.upstream("a")
    await rig.router.set_backends([up.backend()])
    payload = b"0123456789abcdef" * 40_000  # 640 kB
    chunks = [payload[i : i + 50_000] for i in range(0, len(payload), 50_000)]
    wire = b"".join(b"%x\r\n" % len(c) + c + b"\r\n" for c in chunks) + b"0\r\n\r\n"
    client = await rig.client()
    await client.send(b"POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + wire)
    resp = await client.response()
    assert body_of(resp)["sha256"] == hashlib.sha256(payload).hexdigest()
    assert up.requests[0].get("transfer-encoding") == "chunked"
    assert body_of(await client.request("GET", "/next"))["path"] == "/next"


async def test_large_chunked_response_with_trailers(rig: Rig) -> None:
    payload = hashlib.sha256(b"seed").digest() * (5 * 1024 * 1024 // 32)  # 5 MiB
    digest = hashlib.sha256(payload).hexdigest()

    async def chunked(up: Upstream, req: Msg, writer: asyncio.StreamWriter) -> bool:
        if req.path != "/big":
            return await default_handler(up, req, writer)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n")
        for i in range(0, len(payload), 65_536):
            piece = payload[i : i + 65_536]
            writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            await writer.drain()
        writer.write(f"0\r\nX-Checksum: {digest}\r\n\r\n".encode())
        return True

    up = await rig.upstream("a", chunked)
    await rig.router.set_backends([up.backend()])
    client = await rig.client()
    resp = await client.request("GET", "/big")
    assert resp.status == 200
    assert resp.get("transfer-encoding") == "chunked"
    assert len(resp.body) == len(payload)
    assert hashlib.sha256(resp.body).hexdigest() == digest
    assert resp.trailers == [("X-Checksum", digest)]
    assert body_of(await client.request("GET", "/small"))["path"] == "/small"
    assert up.connections == 1  # the backend connection went back to the pool after the trailers


async def test_until_close_response_is_relayed_whole(rig: Rig) -> None:
    payload = b"streamed until the connection closes\n" * 10_000

    async def until_close(up: Upstream, req: Msg, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        for i in range(0, len(payload), 40_000):
            writer.write(payload[i : i + 40_000])
            await writer.drain()
        return False  # close: that ends the body

    up = await rig.upstream("a", until_close)
    await rig.router.set_backends([up.backend()])
    client = await rig.client()
    await client.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    resp = await client.response()  # no length, no chunking: read until the router closes
    assert resp.status == 200
    assert resp.get("content-length") is None
    assert resp.body == payload
    second = await rig.client()
    assert (await second.request("GET", "/again")).body == payload
    assert up.connections == 2  # an until-close connection is never pooled


async def test_head_and_no_content_responses_have_no_body(rig: Rig) -> None:
    async def lengths_without_bodies(up: Upstream, req: Msg, writer: asyncio.StreamWriter) -> bool:
        if req.method == "HEAD":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        elif req.path == "/empty":
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        else:
            return await default_handler(up, req, writer)
        return True

    up = await rig.upstream("a", lengths_without_bodies)
    await rig.router.set_backends([up.backend()])
    client = await rig.client()
    head = await client.request("HEAD", "/")
    assert (head.status, head.get("content-length"), head.body) == (200, "1234", b"")
    assert (await client.request("GET", "/empty")).status == 204
    assert body_of(await client.request("GET", "/after"))["path"] == "/after"
    assert up.connections == 1


# --- limits, empty rotation, maintenance ---------------------------------------------------------


async def test_request_over_the_size_limit_is_refused_before_the_backend(rig: Rig) -> None:
    router = await router_with_limit(rig, 100_000)
    up = await rig.upstream("a")
    await router.set_backends([up.backend()])
    client = await rig.client()
    await client.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100001\r\n\r\n" + b"x" * 1000)
    resp = await client.response()
    assert resp.status == 413
    assert resp.get("connection") == "close"
    assert b"100000" in resp.body
    assert await client.at_eof()
    assert up.connections == 0 and not up.requests
    at_limit = await (await rig.client()).request("POST", "/upload", b"y" * 100_000)
    assert body_of(at_limit)["length"] == 100_000


async def test_chunked_request_over_the_size_limit_is_refused(rig: Rig) -> None:
    router = await router_with_limit(rig, 1000)
    up = await rig.upstream("a")
    await router.set_backends([up.backend()])
    client = await rig.client()
    body = b"".join(b"3e8\r\n" + b"z" * 1000 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n"
    await client.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    resp = await client.response()
    assert resp.status == 413
    assert all(len(r.body) <= 1000 for r in up.requests)


async def test_empty_rotation_answers_503_and_keeps_the_connection(rig: Rig) -> None:
    client = await rig.client()
    resp = await client.request("GET", "/")
    assert resp.status == 503
    assert resp.body == b"no healthy instance to serve this request\n"
    assert resp.get("connection") == "keep-alive"
    post = await client.request("POST", "/api", b"a body the router must skip")
    assert post.status == 503
    await rig.router.set_backends([])
    assert (await client.request("GET", "/")).status == 503


async def test_maintenance_mode_answers_503_with_retry_after_and_a_page(rig: Rig) -> None:
    up = await rig.upstream("a")
    await rig.router.set_backends([up.backend()])
    await rig.router.set_maintenance(True, retry_after=30)
    client = await rig.client()
    resp = await client.request("POST", "/checkout", b"order=1")
    assert resp.status == 503
    assert resp.get("retry-after") == "30"
    assert resp.get("content-type") == "text/html; charset=utf-8"
    assert b"<h1>Down for maintenance</h1>" in resp.body
    assert (await client.request("GET", "/")).status == 503  # the body was skipped, the connection is in step
    assert not up.requests
    await rig.router.set_maintenance(False)
    assert body_of(await client.request("GET", "/open"))["path"] == "/open"


async def test_bad_requests_get_400_and_a_close(rig: Rig) -> None:
    up = await rig.upstream("a")
    await rig.router.set_backends([up.backend()])
    client = await rig.client()
    await client.send(b"GARBAGE\r\n\r\n")
    resp = await client.response()
    assert resp.status == 400
    assert resp.get("connection") == "close"
    assert await client.at_eof()
    huge = await rig.client()
    await huge.send(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    assert (await huge.response()).status == 400
    conflicting = await rig.client()
    await conflicting.send(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
    assert (await conflicting.response()).status == 400
    assert not up.requests


# --- draining ------------------------------------------------------------------------------------


async def slow_until_released(up: Upstream, req: Msg, writer: asyncio.StreamWriter) -> bool:
    if req.path == "/slow":
        await up.release.wait()
    return await default_handler(up, req, writer)


async def test_drain_lets_in_flight_finish_and_sends_nothing_new(rig: Rig) -> None:
    a = await rig.upstream("a", slow_until_released)
    b = await rig.upstream("b")
    await rig.router.set_backends([a.backend()])
    slow_client = await rig.client()
    slow = asyncio.create_task(slow_client.request("GET", "/slow"))
    await eventually(lambda: a.requests, what="the slow request to reach a")
    await rig.router.set_backends([a.backend(), b.backend()])

    drain = asyncio.create_task(rig.router.drain("a", timeout=TIMEOUT))
    client = await rig.client()
    for i in range(6):
        assert body_of(await client.request("GET", f"/new{i}"))["backend"] == "b"
    assert not drain.done(), "drain returned while a request was still in flight"
    assert [r.path for r in a.requests] == ["/slow"]

    a.release.set()
    resp = await slow
    assert resp.status == 200
    assert body_of(resp)["backend"] == "a"
    assert await asyncio.wait_for(drain, TIMEOUT) == 0
    assert body_of(await client.request("GET", "/later"))["backend"] == "b"
    assert [r.path for r in a.requests] == ["/slow"]


async def test_drain_timeout_returns_what_is_still_in_flight(rig: Rig) -> None:
    a = await rig.upstream("a", slow_until_released)
    await rig.router.set_backends([a.backend()])
    slow = asyncio.create_task((await rig.client()).request("GET", "/slow"))
    await eventually(lambda: a.requests, what="the slow request to reach a")
    assert await rig.router.drain("a", timeout=0.2) == 1
    a.release.set()
    assert (await slow).status == 200
    assert await rig.router.drain("a", timeout=1) == 0
    assert await rig.router.drain("never-seen", timeout=1) == 0


# --- stale and dead backends ---------------------------------------------------------------------


async def test_backend_closing_idle_connections_costs_no_request(rig: Rig) -> None:
    up = await rig.upstream("a", idle_timeout=0.1)
    await rig.router.set_backends([up.backend()])
    client = await rig.client()
    for i in range(3):
        assert body_of(await client.request("GET", f"/{i}"))["path"] == f"/{i}"
        await eventually(lambda i=i: up.idle_closed == i + 1, what="the backend to close its idle connection")
    assert body_of(await client.request("POST", "/last", b"payload"))["length"] == 7
    assert up.connections == 4
    counters = rig.router.counters["v1"]
    assert (counters.requests, counters.failed) == (4, 0)


async def test_request_racing_an_idle_close_is_sent_again_on_a_fresh_connection(rig: Rig) -> None:
    """The backend reads the second request on a connection and closes without answering, as an
    app does when its idle timeout fires just as the request arrives."""

    async def drop_second(up: Upstream, req: Msg, writer: asyncio.StreamWriter) -> bool:
        if up.per_conn[req.conn] == 2:
            return False
        return await default_handler(up, req, writer)

    up = await rig.upstream("a", drop_second)
    await rig.router.set_backends([up.backend()])
    client = await rig.client()
    assert body_of(await client.request("GET", "/one"))["path"] == "/one"
    again = await client.request("POST", "/two", b"small body")
    assert again.status == 200
    assert body_of(again)["sha256"] == hashlib.sha256(b"small body").hexdigest()
    assert [(r.path, r.conn) for r in up.requests] == [("/one", 1), ("/two", 1), ("/two", 2)]
    counters = rig.router.counters["v1"]
    assert (counters.requests, counters.failed, counters.errors_5xx) == (2, 0, 0)


async def test_dead_backend_gives_502_and_counts_a_failure(rig: Rig) -> None:
    dead = Backend("dead", HOST, free_port(), "v-dead")
    await rig.router.set_backends([dead])
    client = await rig.client()
    resp = await client.request("GET", "/")
    assert resp.status == 502
    assert resp.body == b"the instance did not answer\n"
    counters = rig.router.counters["v-dead"]
    assert (counters.failed, counters.requests) == (1, 0)

    alive = await rig.upstream("alive")
    await rig.router.set_backends([dead, alive.backend("v-alive")])
    client = await rig.client()
    for i in range(4):  # every other pick is the dead one: the router tries the next instance
        assert body_of(await client.request("GET", f"/{i}"))["backend"] == "alive"
    assert rig.router.counters["v-alive"].requests == 4
    assert rig.router.counters["v-dead"].failed == 1


async def test_error_rate_of_a_dead_release_is_one(rig: Rig) -> None:
    await rig.router.set_backends([Backend("dead", HOST, free_port(), "v-dead")])
    client = await rig.client()
    for _ in range(3):
        assert (await client.request("GET", "/")).status == 502
    assert rig.router.counters["v-dead"].as_json()["error_rate"] == 1.0


async def test_a_request_that_times_out_is_not_sent_twice(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router_module, "RESPONSE_TIMEOUT", 0.3)

    async def never_answers_pay(up: Upstream, req: Msg, writer: asyncio.StreamWriter) -> bool:
        if req.path == "/pay":
            await up.release.wait()
            return False
        return await default_handler(up, req, writer)

    up = await rig.upstream("a", never_answers_pay)
    await rig.router.set_backends([up.backend()])
    client = await rig.client()
    assert (await client.request("GET", "/warm-up")).status == 200  # so /pay goes over a pooled connection
    resp = await client.request("POST", "/pay", b"amount=100")
    assert resp.status in (502, 504)
    assert [r.path for r in up.requests].count("/pay") == 1, "the payment reached the app twice"


async def test_expect_100_continue_gets_its_final_response(rig: Rig) -> None:
    async def continue_then_answer(up: Upstream, req: Msg, writer: asyncio.StreamWriter) -> bool:
        if req.get("expect") == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return await default_handler(up, req, writer)

    up = await rig.upstream("a", continue_then_answer)
    await rig.router.set_backends([up.backend()])
    first = await rig.client()
    await first.send(b"POST /first HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello")
    interim = await first.response()
    other = await (await rig.client()).request("GET", "/second")
    assert body_of(other)["path"] == "/second", "another client got the first client's answer"
    final = await first.response() if interim.status == 100 else interim
    assert final.status == 200
    assert body_of(final)["path"] == "/first"


async def test_malformed_backend_response_gives_502(rig: Rig) -> None:
    async def broken(up: Upstream, req: Msg, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n")
        return False

    up = await rig.upstream("a", broken)
    await rig.router.set_backends([up.backend()])
    client = await rig.client()
    await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    resp = await asyncio.wait_for(read_msg(client.reader, request=False), TIMEOUT)
    assert resp is not None, "the router dropped the connection without an answer"
    assert resp.status == 502
    assert rig.router.counters["v1"].failed == 1


# --- counters ------------------------------------------------------------------------------------


async def test_counters_per_release_count_requests_and_5xx(rig: Rig) -> None:
    async def failing(up: Upstream, req: Msg, writer: asyncio.StreamWriter) -> bool:
        writer.write(response_bytes(500 if req.path == "/fail" else 200, b"x"))
        return True

    old, new = await rig.upstream("old"), await rig.upstream("new", failing)
    await rig.router.set_backends([old.backend("v1"), new.backend("v2")])
    client = await rig.client()
    for _ in range(4):
        await client.request("GET", "/fail")
    v1, v2 = rig.router.counters["v1"], rig.router.counters["v2"]
    assert (v1.requests, v1.errors_5xx) == (2, 0)
    assert (v2.requests, v2.errors_5xx) == (2, 2)
    assert sum(v2.buckets) == 2
    assert v2.latency_sum > 0
    doc = v2.as_json()
    assert doc["error_rate"] == 1.0
    assert doc["p50_ms"] is not None and doc["p50_ms"] > 0
    assert sum(doc["buckets"].values()) == 2


def test_release_counters_buckets_and_quantiles() -> None:
    counters = ReleaseCounters()
    assert counters.quantile(0.5) is None
    assert counters.as_json()["p95_ms"] is None
    assert counters.as_json()["error_rate"] == 0.0
    for _ in range(90):
        counters.observe(200, 0.004)  # the 0.005 bucket
    for _ in range(8):
        counters.observe(503, 0.3)  # the 0.5 bucket
    counters.observe(200, 0.001)  # a bucket's bound is inclusive (le)
    counters.observe(500, 42.0)  # +Inf
    assert counters.requests == 100
    assert counters.errors_5xx == 9
    assert counters.buckets[LATENCY_BUCKETS.index(0.001)] == 1
    assert counters.buckets[LATENCY_BUCKETS.index(0.005)] == 90
    assert counters.buckets[LATENCY_BUCKETS.index(0.5)] == 8
    assert counters.buckets[-1] == 1
    assert counters.quantile(0.5) == 0.005
    assert counters.quantile(0.91) == 0.005
    assert counters.quantile(0.95) == 0.5
    assert counters.quantile(0.99) == 0.5
    assert counters.quantile(1.0) == float("inf")
    doc = counters.as_json()
    assert doc["p50_ms"] == 5.0
    assert doc["p95_ms"] == 500.0
    assert doc["error_rate"] == pytest.approx(0.09)
    assert doc["buckets"]["+Inf"] == 1
    assert doc["buckets"]["0.005"] == 90
    assert list(doc["buckets"]) == [str(b) for b in LATENCY_BUCKETS] + ["+Inf"]
    assert doc["latency_sum"] == pytest.approx(90 * 0.004 + 8 * 0.3 + 0.001 + 42.0)
