"""What the built-in router enforces on client connections, as the edge of an environment:
how long a client may take to send a request head, how long a keep-alive connection may sit idle,
how long a request body (or a client reading its response) may stall, and how many connections one
client address may hold."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from conveyor.agent.http1 import Message, read_head
from conveyor.settings import Settings

_TOO_MANY_TEXT = b"too many connections from this address now\n"
TOO_MANY = (  # written at once to a connection over the cap, which is then closed
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_TOO_MANY_TEXT), _TOO_MANY_TEXT)
)


@dataclass(frozen=True)
class ClientLimits:
    header_timeout: float = 10.0  # from accept (or the next request line) to the end of the head
    idle_timeout: float = 60.0  # a keep-alive connection waiting for its next request line
    body_timeout: float = 30.0  # the longest stall of a request body, or of a client reading its response
    max_connections_per_ip: int = 256

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ClientLimits:
        s = settings or Settings()
        return cls(
            header_timeout=s.router_header_timeout,
            idle_timeout=s.router_idle_timeout,
            body_timeout=s.router_body_timeout,
            max_connections_per_ip=s.router_max_connections_per_ip,
        )


@dataclass
class ConnectionCap:
    """Open client connections per address; ``admit`` refuses one over the cap."""

    per_ip: int
    open: dict[str, int] = field(default_factory=dict)

    def admit(self, ip: str) -> bool:
        count = self.open.get(ip, 0)
        if count >= self.per_ip:
            return False
        self.open[ip] = count + 1
        return True

    def release(self, ip: str) -> None:
        count = self.open.get(ip, 0) - 1
        if count > 0:
            self.open[ip] = count
        else:
            self.open.pop(ip, None)


_LATE_TEXT = b"the request head did not arrive in time\n"
LATE = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_LATE_TEXT), _LATE_TEXT)
)


class Watchdog:
    """The header and idle timeouts of one client connection. One timer per connection looks every
    half of the shorter timeout, so a request costs two clock reads, not a timer of its own; a
    timeout therefore fires up to 50% late. The first head must be whole within the header timeout
    of the accept; a later request line may take the idle timeout, the rest of its head the header
    timeout. A head that started and did not finish gets 408; otherwise the connection just closes."""

    def __init__(self, writer: asyncio.StreamWriter, limits: ClientLimits) -> None:
        self._loop = asyncio.get_running_loop()
        self._writer, self._limits = writer, limits
        self._period = min(limits.header_timeout, limits.idle_timeout) / 2
        self._since, self._started, self._first = self._loop.time(), False, True
        self._limit: float | None = limits.header_timeout  # of the current phase; None while busy
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(self._period, self._tick)

    def waiting(self) -> None:
        """Waiting for the next request line."""
        if not self._first:
            self._since, self._limit, self._started = self._loop.time(), self._limits.idle_timeout, False

    def head_started(self) -> None:
        """The request line is in; the rest of the head must follow within the header timeout."""
        self._started = True
        if not self._first:
            self._since, self._limit = self._loop.time(), self._limits.header_timeout

    def busy(self) -> None:
        """A whole head is in: from here the body timeout and the instance's answer apply."""
        self._limit, self._first = None, False

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        if self._limit is not None and self._loop.time() - self._since > self._limit:
            self._timer = None
            if self._started:
                self._writer.write(LATE)
            self._writer.close()  # the pending read ends; the router's loop closes what is left
            return
        self._timer = self._loop.call_later(self._period, self._tick)


async def next_request(reader: asyncio.StreamReader, watchdog: Watchdog) -> Message | None:
    """The next request head, or None when the client closed (or the watchdog closed it) before one."""
    watchdog.waiting()
    request = await read_head(reader, request=True, on_start=watchdog.head_started)
    watchdog.busy()
    return request
