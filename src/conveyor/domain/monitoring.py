"""Judging a release from its traffic: a window of counts (requests, errors, a latency histogram)
for the new release and, optionally, the previous one, judged against the rules of ``monitor:``.

Pure: no I/O. The statistics are explained in docs/monitoring.md."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

# upper bounds (seconds) of the latency histogram buckets, as Prometheus would have them; a
# window's ``latency_buckets`` has one count more, for +Inf
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _empty_buckets() -> tuple[int, ...]:
    return (0,) * (len(LATENCY_BUCKETS) + 1)


@dataclass(frozen=True)
class Window:
    """One release's traffic over [start, end): ``requests`` answered (any status), ``errors`` the
    5xx answers plus the requests the router could not get answered (``failed``, a part of
    ``errors``), the latency histogram of the answered requests, and the window's length."""

    requests: int = 0
    errors: int = 0
    failed: int = 0
    latency_buckets: tuple[int, ...] = field(default_factory=_empty_buckets)
    seconds: float = 0.0

    @property
    def seen(self) -> int:
        """Requests that reached the router for this release: answered plus failed."""
        return self.requests + self.failed

    @property
    def error_rate(self) -> float:
        """Share of the seen requests answered with a 5xx or not answered (0.0 with no traffic)."""
        return self.errors / self.seen if self.seen else 0.0

    @property
    def rps(self) -> float:
        """Seen requests per second over the window."""
        return self.seen / self.seconds if self.seconds > 0 else 0.0

    def quantile_ms(self, q: float) -> float | None:
        """The upper bound (ms) of the bucket holding the q-quantile latency; None without data,
        ``inf`` when it is in the last (+Inf) bucket."""
        total = sum(self.latency_buckets)
        if not total:
            return None
        rank, seen = max(q * total, 1.0), 0
        for i, count in enumerate(self.latency_buckets):
            seen += count
            if seen >= rank:
                return LATENCY_BUCKETS[i] * 1000 if i < len(LATENCY_BUCKETS) else float("inf")
        return float("inf")

    def merged(self, other: Window) -> Window:
        """The two windows' counts added (e.g. consecutive samples of one release)."""
        return Window(
            requests=self.requests + other.requests,
            errors=self.errors + other.errors,
            failed=self.failed + other.failed,
            latency_buckets=tuple(a + b for a, b in zip(self.latency_buckets, other.latency_buckets, strict=True)),
            seconds=self.seconds + other.seconds,
        )


@dataclass(frozen=True)
class Rules:
    """What ``monitor:`` says, parsed: absolute limits (metric -> (">" or ">=", value in the
    metric's unit: error_rate as a ratio, p50_ms/p95_ms/p99_ms in ms)), regression factors over the
    previous release (metric -> 2.0 for "2x"), and the fewest seen requests worth judging."""

    rollback_if: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    regression: Mapping[str, float] = field(default_factory=dict)
    min_requests: int = 100


@dataclass(frozen=True)
class Finding:
    signal: str  # "error_rate", "p95_ms", "p99_ms", "p50_ms", "failed", a Prometheus query name, "alertmanager"
    unit: str  # "ratio", "ms", "count", "req/s", or a query's own unit
    value: float | None  # measured this window (None: no data)
    threshold: str | None  # the rule as the user wrote it: "> 2%", "2x previous"
    baseline: float | None  # the previous release's value when compared
    breached: bool
    note: str  # one line a person reads


@dataclass(frozen=True)
class Verdict:
    state: Literal["healthy", "breach", "not_enough_traffic"]
    findings: tuple[Finding, ...]

    @property
    def breaches(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.breached)


def judge(new: Window, previous: Window | None, rules: Rules) -> Verdict:
    """The verdict on the new release's window, against the rules and the previous release."""
    raise NotImplementedError("judge is being written (issue 13, helper H1a)")
