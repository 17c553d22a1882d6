"""The built-in router: an asyncio HTTP/1.1 reverse proxy, one listener per environment.

Keep-alive on both sides (backend connections are pooled per instance), streaming bodies
(Content-Length and chunked), X-Forwarded-For/Proto/Host set at the edge, a request-size limit,
round robin over the instances in rotation, draining, and maintenance mode. A request that fails on
a pooled connection before any response byte arrived (the instance closed an idle connection) is
sent again once on a fresh connection, so such races cost no request.

Clients are held to strict HTTP/1.1 (``http1``): a malformed or ambiguous request gets 400 and the
connection closes, before anything reaches an app or, for a chunked body, with the app connection
closed too. A head must arrive within the header timeout, an idle keep-alive connection closes
after the idle timeout, a stalled body gets 408, and one address may hold only so many connections
(``edge.ClientLimits``). A client's fault is never counted against an instance.

Two paths share these rules. The common exchange (a request without a body or with a Content-Length
body of at most RETRY_BODY_LIMIT bytes, answered with a Content-Length or a body-less response) runs
on ``asyncio.Protocol`` callbacks (``_Client``, ``_Upstream``): the request head, body and the
forwarded headers go to the instance in one write, the response head and the body bytes at hand go
to the client in one write, and the connection's timeouts are one timer per connection that looks
every half of the shortest timeout (so a timeout fires up to 50% late), not a timer per request.
Anything else (a chunked or large request body, maintenance, an empty rotation, a chunked or
until-close response) moves the connection onto asyncio streams and the coroutine code below
(``_serve_streams``), which stays on streams until the connection closes. Both paths check heads
with the same strict parser and share one pool of instance connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from conveyor.agent.edge import LATE, TOO_MANY, ClientLimits, ConnectionCap, Watchdog, next_request
from conveyor.agent.http1 import (
    HEAD_LIMIT,
    BadRequest,
    BodyTooLarge,
    Message,
    fast_request_head,
    fast_response_head,
    parse_head,
    read_head,
    simple_response,
    simple_response_bytes,
)
from conveyor.agent.http1_body import (
    COPY_CHUNK,
    Sink,
    SinkTimeout,
    SourceClosed,
    SourceTimeout,
    TimedWriter,
    copy_body,
    read_body,
)
from conveyor.agent.routing import Backend, ReleaseCounters, register

CONNECT_TIMEOUT = 3.0
RESPONSE_TIMEOUT = 60.0
RETRY_BODY_LIMIT = 65_536
POOL_SIZE = 64
_ANSWER = {502: "the instance did not answer", 504: "the instance did not answer in time"}  # no internals
_STALLED = "the request body stalled"


class BackendGone(Exception):
    """The backend connection failed before any response byte arrived."""

    def __init__(self, message: str, retry_safe: bool, status: int = 502) -> None:
        super().__init__(message)
        self.retry_safe = retry_safe  # the request cannot have reached the app, or the connection was a stale one
        self.status = status


class ResponseBroken(Exception):
    """The instance's response broke after its head went to the client: the client connection is spent."""


def _streams(
    transport: asyncio.Transport, buffered: bytes, eof: bool = False
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Move a connection from a protocol of this module onto asyncio streams, with the bytes
    already received (and not used) first in the reader."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=HEAD_LIMIT, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    if buffered:
        reader.feed_data(buffered)
    if eof:
        reader.feed_eof()
    if transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]:
        protocol.pause_writing()
    transport.resume_reading()
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


class _Upstream(asyncio.Protocol):
    """A connection to an instance, idle in its pool or carrying one client's exchange."""

    __slots__ = ("broken", "client", "closed", "pool", "streams", "transport")

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.client: _Client | None = None
        self.closed = False
        self.broken = False  # sent more than the response it owed: never pooled again
        self.streams: asyncio.StreamWriter | None = None  # held: a StreamWriter closes its transport when collected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:  # an idle connection has nothing to say
            self.close()
            return
        client.upstream_data(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        client, self.client = self.client, None
        if client is not None:
            client.upstream_lost(exc)

    def close(self) -> None:
        self.closed = True
        self.client = None
        if self.transport is not None:
            self.transport.close()

    def to_streams(self, buffered: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        assert self.transport is not None
        self.client = None
        self.closed = True  # this object no longer owns the connection
        return _streams(self.transport, buffered)

    @classmethod
    def from_streams(cls, pool: _Pool, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> _Upstream | None:
        """The connection back from streams, or None when it is spent (closing, at EOF, or with
        bytes buffered that no request asked for)."""
        if writer.is_closing() or reader.at_eof() or len(getattr(reader, "_buffer", b"")):
            return None
        transport = cast(asyncio.Transport, writer.transport)
        up = cls(pool)
        up.transport, up.streams = transport, writer
        transport.set_protocol(up)
        transport.resume_reading()
        return up


_Pending = tuple["_Pool", Message, Message, asyncio.StreamReader, asyncio.StreamWriter, bool, float]


@dataclass
class _Pool:
    backend: Backend
    idle: list[_Upstream] = field(default_factory=list)
    in_flight: int = 0
    idle_event: asyncio.Event = field(default_factory=asyncio.Event)

    def close_idle(self) -> None:
        for up in self.idle:
            up.close()
        self.idle.clear()

    def take(self) -> _Upstream | None:
        idle = self.idle
        while idle:
            up = idle.pop()
            if not up.closed:
                return up
        return None

    def give_back(self, up: _Upstream, rotation: list[_Pool]) -> None:
        if not up.closed and not up.broken and len(self.idle) < POOL_SIZE and self in rotation:
            up.client = None
            self.idle.append(up)
        else:
            up.close()

    def done(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self.idle_event.set()


class BuiltinRouter:
    def __init__(
        self, name: str, host: str, port: int, max_body: int = 10 * 1024 * 1024, limits: ClientLimits | None = None
    ) -> None:
        self.name, self.host, self.port, self.max_body = name, host, port, max_body
        self.limits = limits or ClientLimits.from_settings()
        self._cap = ConnectionCap(self.limits.max_connections_per_ip)
        self.counters: dict[str, ReleaseCounters] = {}
        self._rotation: list[_Pool] = []
        self._pools: dict[str, _Pool] = {}
        self._rr = itertools.count()
        self._server: asyncio.Server | None = None
        self._maintenance: int | None = None  # Retry-After seconds when on
        self._clients: set[asyncio.BaseTransport] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Client(self), self.host, self.port, backlog=1024, reuse_address=True
        )

    async def stop(self) -> None:
        if self._server:
            self._server.close()
        for transport in list(self._clients):
            transport.close()
        for pool in self._pools.values():
            pool.close_idle()

    async def set_backends(self, backends: Sequence[Backend]) -> None:
        rotation = []
        for b in backends:
            pool = self._pools.get(b.id)
            if pool is None:
                pool = self._pools[b.id] = _Pool(b)
            rotation.append(pool)
        self._rotation = rotation

    async def drain(self, backend_id: str, timeout: float) -> int:
        pool = self._pools.get(backend_id)
        if pool is None:
            return 0
        if pool in self._rotation:
            self._rotation = [p for p in self._rotation if p is not pool]
        deadline = time.monotonic() + timeout
        while pool.in_flight and time.monotonic() < deadline:
            pool.idle_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pool.idle_event.wait(), max(0.0, deadline - time.monotonic()))
        pool.close_idle()
        if not pool.in_flight:
            del self._pools[backend_id]
        return pool.in_flight

    async def set_maintenance(self, on: bool, retry_after: int = 120) -> None:
        self._maintenance = retry_after if on else None

    # --- serving on streams (everything but the common exchange) -------------------------------

    async def _serve_streams(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client_ip: str,
        request: Message | None,
        pending: _Pending | None = None,
    ) -> None:
        """A client connection moved onto streams by ``_Client``: first the request it was at (or
        the rest of an exchange whose response needs streams), then the next ones, until it closes."""
        watchdog = Watchdog(writer, self.limits)
        watchdog.busy()
        try:
            if pending is not None:
                if not await self._respond_rest(*pending, writer):
                    return
            elif request is not None and not await self._handle(request, reader, writer, client_ip):
                return
            while True:
                request = await next_request(reader, watchdog)
                if request is None:
                    return
                if not await self._handle(request, reader, writer, client_ip):
                    return
        except BadRequest as exc:  # the client's request (head or body): nothing of it was answered yet
            await simple_response(writer, 400, str(exc), close=True)
        except SourceTimeout:
            await simple_response(writer, 408, _STALLED, close=True)
        except BodyTooLarge:  # a chunked body skipped in maintenance or with no instance
            await simple_response(writer, 413, f"request body over {self.max_body} bytes", close=True)
        except (ConnectionError, asyncio.IncompleteReadError, SourceClosed, SinkTimeout, ResponseBroken):
            return
        finally:
            watchdog.stop()
            self._cap.release(client_ip)
            self._clients.discard(writer.transport)
            writer.close()

    async def _respond_rest(
        self,
        pool: _Pool,
        request: Message,
        response: Message,
        b_reader: asyncio.StreamReader,
        b_writer: asyncio.StreamWriter,
        keep: bool,
        started: float,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """The rest of an exchange ``_Client`` began: its response head is in, its body needs streams."""
        try:
            status, keep_backend = await self._respond(pool, request, response, b_reader, b_writer, writer, keep)
        except ResponseBroken:
            self._count(pool).fail()
            return False
        finally:
            pool.done()
        self._count(pool).observe(status, time.perf_counter() - started)
        return keep and keep_backend

    async def _handle(
        self, request: Message, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client_ip: str
    ) -> bool:
        keep = request.keep_alive
        if request.content_length is not None and request.content_length > self.max_body:
            await simple_response(writer, 413, f"request body over {self.max_body} bytes", close=True)
            return False
        if self._maintenance is not None:
            await copy_body(reader, Sink(), request, self.max_body, self.limits.body_timeout)
            await simple_response(
                writer,
                503,
                "This service is down for maintenance. Please try again shortly.",
                close=not keep,
                headers=[("Retry-After", str(self._maintenance))],
                html=True,
            )
            return keep
        if not self._rotation:
            await copy_body(reader, Sink(), request, self.max_body, self.limits.body_timeout)
            await simple_response(writer, 503, "no healthy instance to serve this request", close=not keep)
            return keep
        request.forwarded(client_ip, self.host, self.port)
        body: bytes | None = None
        if request.is_chunked or (request.content_length or 0) > RETRY_BODY_LIMIT:
            body = None  # streamed once, no retry
        else:
            body = await read_body(reader, request, self.limits.body_timeout)
        started = time.perf_counter()
        pool = self._pick()
        try:
            status, keep_backend = await self._exchange(pool, request, body, reader, writer, keep)
        except BodyTooLarge:
            await simple_response(writer, 413, f"request body over {self.max_body} bytes", close=True)
            return False
        except ResponseBroken:
            self._count(pool).fail()
            return False
        except BackendGone as gone:
            if body is None or not gone.retry_safe or not self._rotation:
                self._count(pool).fail()
                await simple_response(writer, gone.status, _ANSWER[gone.status], close=True)
                return False
            pool = self._pick()
            try:
                status, keep_backend = await self._exchange(pool, request, body, reader, writer, keep, fresh=True)
            except BackendGone as again:
                self._count(pool).fail()
                await simple_response(writer, again.status, _ANSWER[again.status], close=not keep)
                return keep
        self._count(pool).observe(status, time.perf_counter() - started)
        return keep and keep_backend

    def _pick(self) -> _Pool:
        rotation = self._rotation
        return rotation[next(self._rr) % len(rotation)]

    def _count(self, pool: _Pool) -> ReleaseCounters:
        release = pool.backend.release
        counters = self.counters.get(release)
        if counters is None:
            counters = self.counters[release] = ReleaseCounters()
        return counters

    async def _connect(self, pool: _Pool, fresh: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        if not fresh and (up := pool.take()) is not None:
            reader, writer = up.to_streams()
            return reader, writer, True
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(pool.backend.host, pool.backend.port, limit=HEAD_LIMIT), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            raise BackendGone(str(exc), retry_safe=True) from exc
        return reader, writer, False

    @staticmethod
    async def _final_head(reader: asyncio.StreamReader) -> Message | None:
        """The final response head: interim 1xx responses (100 Continue) are read and dropped, since
        the router has sent the body already; left unread they would answer the next request."""
        while True:
            head = await read_head(reader, request=False)
            if head is None or not (100 <= head.status < 200) or head.status == 101:
                return head

    async def _exchange(
        self,
        pool: _Pool,
        request: Message,
        body: bytes | None,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        client_keep: bool,
        fresh: bool = False,
    ) -> tuple[int, bool]:
        pool.in_flight += 1
        try:
            b_reader, b_writer, reused = await self._connect(pool, fresh)
            try:
                b_writer.write(request.encode_head(keep_alive=True))
                if body is None:
                    limits = self.limits
                    await copy_body(client_reader, b_writer, request, self.max_body, limits.body_timeout)
                elif body:
                    b_writer.write(body)
            except (BadRequest, BodyTooLarge, SourceClosed):  # the client's fault: the app saw part of a request
                b_writer.close()
                raise
            except (ConnectionError, OSError) as exc:
                b_writer.close()
                raise BackendGone(str(exc), retry_safe=reused) from exc
            try:
                await b_writer.drain()
                async with asyncio.timeout(RESPONSE_TIMEOUT):
                    response = await self._final_head(b_reader)
            except TimeoutError as exc:  # the app may be working on it: never send it again
                b_writer.close()
                raise BackendGone(f"no answer within {RESPONSE_TIMEOUT:.0f}s", retry_safe=False, status=504) from exc
            except BadRequest as exc:  # a malformed response
                b_writer.close()
                raise BackendGone(f"malformed response: {exc}", retry_safe=False) from exc
            except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
                b_writer.close()
                raise BackendGone(str(exc), retry_safe=reused) from exc
            if response is None:
                b_writer.close()
                raise BackendGone("the instance closed the connection", retry_safe=reused)
            return await self._respond(pool, request, response, b_reader, b_writer, client_writer, client_keep)
        finally:
            pool.done()

    async def _respond(
        self,
        pool: _Pool,
        request: Message,
        response: Message,
        b_reader: asyncio.StreamReader,
        b_writer: asyncio.StreamWriter,
        client_writer: asyncio.StreamWriter,
        client_keep: bool,
    ) -> tuple[int, bool]:
        response.no_body = request.method == "HEAD" or response.status in (204, 304) or response.status < 200
        client_writer.write(response.encode_head(keep_alive=client_keep))
        try:  # a client that stops reading is cut off after the body timeout
            await copy_body(b_reader, client_writer, response, write_timeout=self.limits.body_timeout)
            if client_writer.transport.get_write_buffer_size() > COPY_CHUNK:
                await TimedWriter(client_writer, self.limits.body_timeout).drain()
        except (BadRequest, SourceClosed) as exc:
            b_writer.close()
            raise ResponseBroken(str(exc)) from exc
        except BaseException:
            b_writer.close()  # the client or the app went away mid-response: the connection is spent
            raise
        backend_keep = response.keep_alive and not response.until_close
        up = _Upstream.from_streams(pool, b_reader, b_writer) if backend_keep else None
        if up is not None:
            pool.give_back(up, self._rotation)
        else:
            b_writer.close()
        return response.status, not response.until_close


# --- the common exchange on protocol callbacks ---------------------------------------------------

_WAIT, _HEAD, _BODY, _CONNECT, _RESPONSE, _RELAY, _DRAIN, _GONE = range(8)


class _Client(asyncio.Protocol):
    """One client connection while its exchanges take the common path (see the module docstring).
    States: _WAIT for a request line, _HEAD for the rest of the head, _BODY for a small body,
    _CONNECT to an instance, _RESPONSE for its head, _RELAY of its body, _DRAIN until the client
    took in what it was sent, _GONE once closed or moved onto streams."""

    def __init__(self, router: BuiltinRouter) -> None:
        self.router = router
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.ip = "unknown"
        self.ip_bytes = b"unknown"
        self.buf = bytearray()
        self.state = _WAIT
        self.first = True
        self.since = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.eof = False
        self.reading_paused = False
        self.write_paused = False
        self.paused_since = 0.0
        # the exchange in progress
        self.out = b""
        self.method = b"GET"
        self.length = 0
        self.keep = True
        self.started = 0.0
        self.retried = False
        self.reused = False
        self.pool: _Pool | None = None
        self.up: _Upstream | None = None
        self.rbuf = b""
        self.status = 0
        self.backend_keep = True
        self.remaining = 0
        self.period = 1.0

    # client side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        peer = transport.get_extra_info("peername")
        self.ip = peer[0] if peer else "unknown"
        self.ip_bytes = self.ip.encode()
        router = self.router
        if not router._cap.admit(self.ip):
            self.state = _GONE
            transport.write(TOO_MANY)
            transport.close()
            return
        self.transport = transport
        router._clients.add(transport)
        self.since = self.loop.time()
        limits = router.limits
        self.period = min(limits.header_timeout, limits.idle_timeout, limits.body_timeout, RESPONSE_TIMEOUT) / 2
        self.timer = self.loop.call_later(self.period, self._tick)

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state == _WAIT and not self.buf and data[:2] != b"\r\n":
            end = data.find(b"\r\n\r\n") + 4
            if end == len(data) and end > 4:  # one head and nothing else: the usual case, taken inline
                router = self.router
                if router._maintenance is None and router._rotation:
                    fast = fast_request_head(data, data.find(b"\n") + 1, self.ip_bytes)
                    if fast is not None and not fast[2]:
                        self.out, self.method, self.length, self.keep = fast
                        self.started = time.perf_counter()
                        self.retried = False
                        rotation = router._rotation
                        self._send(rotation[next(router._rr) % len(rotation)], fresh=False)
                        return
            if end > 4 and self._fast_head(data, data.find(b"\n") + 1, end):
                return  # a whole common head in one read
        self.buf += data
        if state <= _HEAD:
            self._next_head()
        elif state == _BODY:
            self.since = self.loop.time()
            self._body()
        elif state != _GONE and len(self.buf) > HEAD_LIMIT and not self.reading_paused:
            self.reading_paused = True  # pipelined requests wait for the exchange in progress
            assert self.transport is not None
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        # between requests, or a head or body cut short: nothing to answer, the connection closes;
        # otherwise the answer to a whole request still goes out, then the connection closes
        return self.state not in (_WAIT, _HEAD, _BODY)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return  # over the cap: never admitted
        if self.state != _GONE:
            self._abandon()
            self._release()

    def pause_writing(self) -> None:
        self.write_paused = True
        self.paused_since = self.loop.time()
        up = self.up
        if up is not None and up.transport is not None:
            up.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        up = self.up
        if up is not None and up.transport is not None:
            up.transport.resume_reading()
        if self.state == _DRAIN:
            self._idle()

    def _release(self) -> None:
        self.state = _GONE
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.router._cap.release(self.ip)
        assert self.transport is not None
        self.router._clients.discard(self.transport)

    def _close(self, answer: bytes = b"") -> None:
        transport = self.transport
        assert transport is not None
        if self.state != _GONE:
            self._abandon()
            self._release()
        if answer:
            transport.write(answer)
        transport.close()

    def _abandon(self) -> None:
        """The client went away (or is sent away) in the middle of an exchange: the instance's
        connection is spent and the request is not counted against it."""
        up, self.up = self.up, None
        if up is not None:
            up.close()
        if self.state in (_CONNECT, _RESPONSE, _RELAY):
            pool, self.pool = self.pool, None
            if pool is not None:
                pool.done()

    def _tick(self) -> None:
        now = self.loop.time()
        state, limits = self.state, self.router.limits
        late = now - self.since
        if state == _WAIT and late > (limits.header_timeout if self.first else limits.idle_timeout):
            return self._close()
        if state == _HEAD and late > limits.header_timeout:
            return self._close(LATE)
        if state == _BODY and late > limits.body_timeout:
            return self._close(simple_response_bytes(408, _STALLED, close=True))
        if state == _RESPONSE and late > RESPONSE_TIMEOUT:  # the app may be working on it: never send it again
            self._gone(BackendGone(f"no answer within {RESPONSE_TIMEOUT:.0f}s", retry_safe=False, status=504))
        elif state in (_RELAY, _DRAIN) and self.write_paused and now - self.paused_since > limits.body_timeout:
            return self._close()  # a client that does not read its response
        if self.state != _GONE:
            self.timer = self.loop.call_later(self.period, self._tick)

    def _next_head(self) -> None:
        """Parse the next request head once it is whole, held to the same rules as ``read_head``."""
        buf = self.buf
        skipped = 0
        while buf[:2] == b"\r\n" and skipped < 8:  # RFC 9112 2.2: empty lines before a request line
            del buf[:2]
            skipped += 1
        nl = buf.find(b"\n")
        if nl < 0:
            if len(buf) > HEAD_LIMIT:
                self._bad("request head too large")
            return
        if buf[nl - 1 : nl] != b"\r" or b"\r" in buf[: nl - 1]:
            self._bad(f"line not ended by CRLF (a bare LF or CR): {bytes(buf[: min(nl + 1, 80)])!r}")
            return
        if self.state == _WAIT:
            self.state = _HEAD
            if not self.first:
                self.since = self.loop.time()
        two = buf[nl + 1 : nl + 3]
        if len(two) < 2:
            return
        if two == b"\r\n":
            end = nl + 3
        elif b"\r" in two or b"\n" in two:
            self._bad(f"a bare LF or CR after the start line: {bytes(two)!r}")
            return
        else:
            cut = buf.find(b"\r\n\r\n", nl + 3)
            if cut < 0:
                if len(buf) - nl > HEAD_LIMIT:
                    self._bad("request head too large")
                return
            end = cut + 4
        start, block = bytes(buf[: nl + 1]), bytes(buf[nl + 1 : end])
        del buf[:end]
        router = self.router
        try:
            request = parse_head(start, block, True)
        except BadRequest as exc:
            self._bad(str(exc))
            return
        length = request.content_length or 0
        if (
            request.is_chunked
            or length > RETRY_BODY_LIMIT
            or length > router.max_body
            or router._maintenance is not None
            or not router._rotation
        ):
            self._to_streams(request)
            return
        request.forwarded(self.ip, router.host, router.port)
        self.out = request.encode_head(keep_alive=True)
        self.method, self.length, self.keep = request.method.encode(), length, request.keep_alive
        self.state, self.since = _BODY, self.loop.time()
        self._body()

    def _fast_head(self, data: bytes, nl: int, end: int) -> bool:
        """Take a whole head that starts ``data`` by fast_request_head; False (nothing taken) when
        it is not a common one or the router cannot serve it on this path."""
        router = self.router
        if router._maintenance is not None or not router._rotation:
            return False
        fast = fast_request_head(data[:end] if end < len(data) else data, nl, self.ip_bytes)
        if fast is None or fast[2] > RETRY_BODY_LIMIT or fast[2] > router.max_body:
            return False
        self.out, self.method, self.length, self.keep = fast
        if end < len(data):
            self.buf += data[end:]
        self.state, self.since = _BODY, self.loop.time()
        self._body()
        return True

    def _bad(self, reason: str) -> None:
        self._close(simple_response_bytes(400, reason, close=True))

    def _to_streams(self, request: Message | None, pending: _Pending | None = None) -> None:
        transport = self.transport
        assert transport is not None
        self.state = _GONE
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        reader, writer = _streams(transport, bytes(self.buf), self.eof)
        self.buf.clear()
        router = self.router
        self.loop.create_task(router._serve_streams(reader, writer, self.ip, request, pending))

    def _body(self) -> None:
        length = self.length
        if len(self.buf) < length:
            return
        if length:
            self.out += bytes(self.buf[:length])
            del self.buf[:length]
        self.started = time.perf_counter()
        self.retried = False
        self._send(self.router._pick(), fresh=False)

    # instance side

    def _send(self, pool: _Pool, fresh: bool) -> None:
        self.pool = pool
        pool.in_flight += 1
        up = None if fresh else pool.take()
        if up is None:
            self.state = _CONNECT
            self.loop.create_task(self._connect(pool))
            return
        self._attach(up, True)

    def _attach(self, up: _Upstream, reused: bool) -> None:
        self.up, self.reused = up, reused
        up.client = self
        self.rbuf = b""
        self.state, self.since = _RESPONSE, self.loop.time()
        assert up.transport is not None
        up.transport.write(self.out)
        if self.write_paused:
            up.transport.pause_reading()

    async def _connect(self, pool: _Pool) -> None:
        backend = pool.backend
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, up = await self.loop.create_connection(lambda: _Upstream(pool), backend.host, backend.port)
        except (OSError, TimeoutError) as exc:
            if self.state == _CONNECT and self.pool is pool:
                self._gone(BackendGone(str(exc) or type(exc).__name__, retry_safe=True))
            return
        if self.state != _CONNECT or self.pool is not pool:  # the client went away meanwhile
            up.close()
            return
        self._attach(up, reused=False)

    def upstream_lost(self, exc: Exception | None) -> None:
        self.up = None
        if self.state == _RESPONSE:
            self._gone(BackendGone(str(exc) if exc else "the instance closed the connection", retry_safe=self.reused))
        elif self.state == _RELAY:  # the response broke after its head went out
            pool, self.pool = self.pool, None
            assert pool is not None
            pool.done()
            self.router._count(pool).fail()
            self._close()

    def _gone(self, gone: BackendGone) -> None:
        """The instance failed before any response byte went to the client."""
        up, self.up = self.up, None
        if up is not None:
            up.close()
        pool, self.pool = self.pool, None
        assert pool is not None
        pool.done()
        router = self.router
        if not self.retried and gone.retry_safe and router._rotation:
            self.retried = True
            self._send(router._pick(), fresh=True)
            return
        router._count(pool).fail()
        close = not self.retried or not self.keep
        answer = simple_response_bytes(gone.status, _ANSWER[gone.status], close=close)
        if close:
            self._close(answer)
        else:
            assert self.transport is not None
            self.transport.write(answer)
            self._idle()

    def upstream_data(self, data: bytes) -> None:
        state = self.state
        if state == _RELAY:
            remaining = self.remaining
            if len(data) > remaining:
                data = data[:remaining]
                self._upstream_broken()
            self.remaining = remaining - len(data)
            assert self.transport is not None
            self.transport.write(data)
            if not self.remaining:
                self._done()
        elif state == _RESPONSE:
            if not self.rbuf:  # the usual case: a whole Content-Length response in one read, taken inline
                cut = data.find(b"\r\n\r\n") + 4
                if 4 < cut <= HEAD_LIMIT:
                    head = data if cut == len(data) else data[:cut]
                    fast = fast_response_head(head, data.find(b"\r\n") + 2, self.keep)
                    if (
                        fast is not None
                        and fast[2] == len(data) - cut
                        and self.method != b"HEAD"
                        and fast[0] not in (204, 304)
                    ):
                        self.status, head, _, self.backend_keep = fast
                        assert self.transport is not None
                        self.transport.write(head + data[cut:] if cut < len(data) else head)
                        self._done()
                        return
            self._response_head(data)
        else:
            self._upstream_broken()

    def _upstream_broken(self) -> None:
        if self.up is not None:
            self.up.broken = True

    def _response_head(self, data: bytes) -> None:
        rbuf = self.rbuf + data if self.rbuf else data
        while True:
            cut = rbuf.find(b"\r\n\r\n")
            if cut < 0:
                if len(rbuf) > HEAD_LIMIT:
                    self._gone(BackendGone("malformed response: response head too large", retry_safe=False))
                else:
                    self.rbuf = rbuf
                return
            line = rbuf.find(b"\r\n") + 2
            fast = None
            if cut + 4 <= HEAD_LIMIT:
                fast = fast_response_head(rbuf if cut + 4 == len(rbuf) else rbuf[: cut + 4], line, self.keep)
            if fast is not None:
                self.status, head, length, self.backend_keep = fast
                no_body = self.method == b"HEAD" or self.status in (204, 304)
                if length is None and not no_body:  # a body until close: the general path relays it
                    response = parse_head(rbuf[:line], rbuf[line : cut + 4], False)
                    return self._response_to_streams(response, rbuf[cut + 4 :])
                rbuf = rbuf[cut + 4 :]
                self.remaining = 0 if no_body else length or 0
                break
            start = rbuf[:line]
            try:
                if b"\n" in start[:-1] or b"\r" in start[:-2]:
                    raise BadRequest(f"line not ended by CRLF (a bare LF or CR): {rbuf[:80]!r}")
                response = parse_head(start, rbuf[line : cut + 4], request=False)
            except BadRequest as exc:
                self._gone(BackendGone(f"malformed response: {exc}", retry_safe=False))
                return
            except ConnectionError as exc:
                self._gone(BackendGone(str(exc), retry_safe=self.reused))
                return
            rbuf = rbuf[cut + 4 :]
            if 100 <= response.status < 200 and response.status != 101:
                continue  # interim 1xx responses (100 Continue) are dropped: the body went already
            response.no_body = self.method == b"HEAD" or response.status in (204, 304) or response.status < 200
            if not response.no_body and (response.content_length is None or response.is_chunked):
                return self._response_to_streams(response, rbuf)
            self.status = response.status
            self.backend_keep = response.keep_alive
            self.remaining = 0 if response.no_body else response.content_length or 0
            head = response.encode_head(keep_alive=self.keep)
            break
        self.rbuf = b""
        assert self.transport is not None
        self.state = _RELAY
        part = rbuf[: self.remaining] if rbuf else b""
        if len(rbuf) > len(part):
            self._upstream_broken()  # bytes no request asked for: the connection is not pooled again
        self.remaining -= len(part)
        self.transport.write(head + part if part else head)
        if not self.remaining:
            self._done()

    def _response_to_streams(self, response: Message, rest: bytes) -> None:
        request = Message(b"", [], b"HTTP/1.1", method=self.method.decode())  # what _respond reads of it
        up, self.up = self.up, None
        pool, self.pool = self.pool, None
        assert up is not None and pool is not None
        b_reader, b_writer = up.to_streams(rest)
        self._to_streams(None, (pool, request, response, b_reader, b_writer, self.keep, self.started))

    def _done(self) -> None:
        """The whole response went to the client (or its transport buffer)."""
        up, self.up = self.up, None
        pool, self.pool = self.pool, None
        assert up is not None and pool is not None
        router = self.router
        if up.transport is not None and self.write_paused:
            up.transport.resume_reading()
        if self.backend_keep:
            pool.give_back(up, router._rotation)
        else:
            up.close()
        pool.done()
        router._count(pool).observe(self.status, time.perf_counter() - self.started)
        if not self.keep:
            self._close()
        elif self.write_paused:
            self.state = _DRAIN
        else:
            self._idle()

    def _idle(self) -> None:
        """Back to waiting for the next request, which may be in the buffer already (pipelining)."""
        self.state, self.since, self.first = _WAIT, self.loop.time(), False
        if self.reading_paused:
            self.reading_paused = False
            assert self.transport is not None
            self.transport.resume_reading()
        if self.buf:
            self._next_head()
        if self.eof and self.state in (_WAIT, _HEAD, _BODY):
            self._close()  # the client sent no further whole request before it stopped sending


register("builtin", BuiltinRouter)
