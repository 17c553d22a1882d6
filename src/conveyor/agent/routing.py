"""What every router (built-in or HAProxy) offers the agent: a rotation of backends that can be
swapped at once, draining of a backend that left it, maintenance mode, and per-release counters."""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from conveyor.domain.monitoring import LATENCY_BUCKETS, Window
from conveyor.registry import Registry

__all__ = ["HISTORY_SECONDS", "LATENCY_BUCKETS", "Backend", "ReleaseCounters", "Router", "register"]


@dataclass(frozen=True)
class Backend:
    id: str
    host: str
    port: int
    release: str


HISTORY_SECONDS = 3 * 3600  # how far back a release's per-second history reaches


@dataclass
class ReleaseCounters:
    """Requests, 5xx and a latency histogram for one release in one environment: the totals since
    the agent started, and the same per second of the clock for the last HISTORY_SECONDS, from
    which ``window`` answers any interval. One slot per second that saw traffic: [requests,
    errors_5xx, failed, bucket counts...], so memory stays under HISTORY_SECONDS slots."""

    requests: int = 0
    errors_5xx: int = 0
    failed: int = 0  # the router could not get an answer from the backend at all
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    history: dict[int, list[int]] = field(default_factory=dict, repr=False, compare=False)

    def observe(self, status: int, seconds: float) -> None:
        bucket = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        self.requests += 1
        self.buckets[bucket] += 1
        self.latency_sum += seconds
        slot = self._slot()
        slot[0] += 1
        if status >= 500:
            self.errors_5xx += 1
            slot[1] += 1
        slot[3 + bucket] += 1

    def fail(self) -> None:
        """A request the router could not get answered by the release's backend at all."""
        self.failed += 1
        self._slot()[2] += 1

    def _slot(self) -> list[int]:
        second = int(self.clock())
        slot = self.history.get(second)
        if slot is None:
            slot = self.history[second] = [0] * (3 + len(LATENCY_BUCKETS) + 1)
            self._forget(second - HISTORY_SECONDS)
        return slot

    def _forget(self, before: int) -> None:
        # dicts keep insertion order and seconds are inserted in order (a clock stepped back
        # inserts an older second later: it is then forgotten late, never counted twice)
        while self.history:
            oldest = next(iter(self.history))
            if oldest >= before:
                return
            del self.history[oldest]

    def window(self, since: float, until: float) -> Window:
        """The counts of the seconds that start in [since, until): consecutive intervals share no
        second, and the same interval read again gives the same numbers once ``until`` is past."""
        self._forget(int(self.clock()) - HISTORY_SECONDS)  # a release without traffic keeps no old slots
        first, last = math.ceil(since), math.ceil(until)  # seconds s with since <= s < until
        requests = errors = failed = 0
        buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        if last - first < len(self.history):
            slots = (self.history.get(s) for s in range(first, last))
        else:
            slots = (slot for s, slot in self.history.items() if first <= s < last)
        for slot in slots:
            if slot is None:
                continue
            requests += slot[0]
            errors += slot[1] + slot[2]
            failed += slot[2]
            for i, count in enumerate(slot[3:]):
                buckets[i] += count
        return Window(requests, errors, failed, tuple(buckets), float(max(0, last - first)))

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
