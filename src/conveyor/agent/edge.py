"""What the built-in router enforces on client connections, as the edge of an environment:
how long a client may take to send a request head, how long a keep-alive connection may sit idle,
how long a request body may stall, and how many connections one client address may hold."""

from __future__ import annotations

from dataclasses import dataclass, field

from conveyor.settings import Settings


@dataclass(frozen=True)
class ClientLimits:
    header_timeout: float = 10.0  # from accept (or the next request line) to the end of the head
    idle_timeout: float = 60.0  # a keep-alive connection waiting for its next request line
    body_timeout: float = 30.0  # the longest pause between two reads of a request body
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
