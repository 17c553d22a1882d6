"""What every router (built-in or HAProxy) offers the agent: a rotation of backends that can be
swapped at once, draining of a backend that left it, maintenance mode, and per-release counters."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from conveyor.domain.monitoring import LATENCY_BUCKETS
from conveyor.registry import Registry

__all__ = ["LATENCY_BUCKETS", "Backend", "ReleaseCounters", "Router", "register"]


@dataclass(frozen=True)
class Backend:
    id: str
    host: str
    port: int
    release: str


@dataclass
class ReleaseCounters:
    """Requests, 5xx and a latency histogram for one release in one environment."""

    requests: int = 0
    errors_5xx: int = 0
    failed: int = 0  # the router could not get an answer from the backend at all
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0

    def observe(self, status: int, seconds: float) -> None:
        self.requests += 1
        if status >= 500:
            self.errors_5xx += 1
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    @property
    def error_rate(self) -> float:
        """Share of requests answered with a 5xx or not answered at all."""
        seen = self.requests + self.failed
        return (self.errors_5xx + self.failed) / seen if seen else 0.0

    def quantile(self, q: float) -> float | None:
        """An upper bound of the q-quantile latency in seconds, from the buckets."""
        total = sum(self.buckets)
        if not total:
            return None
        rank, seen = max(q * total, 1), 0
        for i, count in enumerate(self.buckets):
            seen += count
            if seen >= rank:
                return LATENCY_BUCKETS[i] if i < len(LATENCY_BUCKETS) else float("inf")
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors_5xx": self.errors_5xx,
            "failed": self.failed,
            "error_rate": self.error_rate,
            "p50_ms": _ms(self.quantile(0.5)),
            "p95_ms": _ms(self.quantile(0.95)),
            "p99_ms": _ms(self.quantile(0.99)),
            "buckets": dict(zip([str(b) for b in LATENCY_BUCKETS] + ["+Inf"], self.buckets, strict=True)),
            "latency_sum": self.latency_sum,
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class Router(Protocol):
    """An environment's traffic switch. ``set_backends`` replaces the rotation at once; a backend
    that left it gets no new requests, and ``drain`` waits for its in-flight ones to finish."""

    port: int
    counters: dict[str, ReleaseCounters]

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def set_backends(self, backends: Sequence[Backend]) -> None: ...

    async def drain(self, backend_id: str, timeout: float) -> int:
        """Wait until no request is in flight on the backend (at most ``timeout`` s); return how
        many still are. Its idle connections are closed."""
        ...

    async def set_maintenance(self, on: bool, retry_after: int = 120) -> None: ...


ROUTERS: Registry[Callable[..., Router]] = Registry("router", ("conveyor.agent.router", "conveyor.agent.haproxy"))


def register(kind: str, factory: Callable[..., Router]) -> None:
    ROUTERS.register(kind, factory)
