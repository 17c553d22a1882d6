"""What the built-in router enforces on client connections, as the edge of an environment:
how long a client may take to send a request head, how long a keep-alive connection may sit idle,
how long a request body (or a client reading its response) may stall, and how many connections one
client address may hold."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from conveyor.agent.http1 import Message, read_head, simple_response
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


async def next_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: ClientLimits, first: bool
) -> Message | None:
    """The next request head. The first one must be whole within the header timeout of the accept;
    a later one's request line may take the idle timeout, the rest of its head the header timeout.
    None when the client closed, or timed out before a request line (then it is closed without an
    answer); a head started but not finished in time gets 408."""
    started = False

    def start() -> None:
        nonlocal started
        started = True
        if not first:
            deadline.reschedule(asyncio.get_running_loop().time() + limits.header_timeout)

    try:
        async with asyncio.timeout(limits.header_timeout if first else limits.idle_timeout) as deadline:
            return await read_head(reader, request=True, on_start=start)
    except TimeoutError:
        if started:
            await simple_response(writer, 408, "the request head did not arrive in time", close=True)
        return None
