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
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from conveyor.agent.edge import TOO_MANY, ClientLimits, ConnectionCap, Watchdog, next_request
from conveyor.agent.http1 import HEAD_LIMIT, BadRequest, BodyTooLarge, Message, read_head, simple_response
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


class BackendGone(Exception):
    """The backend connection failed before any response byte arrived."""

    def __init__(self, message: str, retry_safe: bool, status: int = 502) -> None:
        super().__init__(message)
        self.retry_safe = retry_safe  # the request cannot have reached the app, or the connection was a stale one
        self.status = status


class ResponseBroken(Exception):
    """The instance's response broke after its head went to the client: the client connection is spent."""


@dataclass
class _Pool:
    backend: Backend
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)
    in_flight: int = 0
    idle_event: asyncio.Event = field(default_factory=asyncio.Event)

    def close_idle(self) -> None:
        for _reader, writer in self.idle:
            writer.close()
        self.idle.clear()


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
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=HEAD_LIMIT, backlog=1024, reuse_address=True
        )

    async def stop(self) -> None:
        if self._server:
            self._server.close()
        for writer in list(self._clients):
            writer.close()
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

    # --- serving -----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client_ip = peer[0] if peer else "unknown"
        if not self._cap.admit(client_ip):
            writer.write(TOO_MANY)
            writer.close()
            return
        self._clients.add(writer)
        watchdog = Watchdog(writer, self.limits)
        try:
            while True:
                request = await next_request(reader, watchdog)
                if request is None:
                    return
                if not await self._handle(request, reader, writer, client_ip):
                    return
        except BadRequest as exc:  # the client's request (head or body): nothing of it was answered yet
            await simple_response(writer, 400, str(exc), close=True)
        except SourceTimeout:
            await simple_response(writer, 408, "the request body stalled", close=True)
        except BodyTooLarge:  # a chunked body skipped in maintenance or with no instance
            await simple_response(writer, 413, f"request body over {self.max_body} bytes", close=True)
        except (ConnectionError, asyncio.IncompleteReadError, SourceClosed, SinkTimeout, ResponseBroken):
            return
        finally:
            watchdog.stop()
            self._cap.release(client_ip)
            self._clients.discard(writer)
            writer.close()

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
        while pool.idle and not fresh:
            reader, writer = pool.idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer, True
            writer.close()
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
            if backend_keep and len(pool.idle) < POOL_SIZE and pool in self._rotation:
                pool.idle.append((b_reader, b_writer))
            else:
                b_writer.close()
            return response.status, not response.until_close
        finally:
            pool.in_flight -= 1
            if not pool.in_flight:
                pool.idle_event.set()


register("builtin", BuiltinRouter)
