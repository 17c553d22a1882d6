"""Judging a release from its traffic: a window of counts (requests, errors, a latency histogram)
for the new release and, optionally, the previous one, judged against the rules of ``monitor:``.

Pure: no I/O. The statistics are explained in docs/monitoring.md."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

# upper bounds (seconds) of the latency histogram buckets, as Prometheus has them (``le``); a
# window's ``latency_buckets`` has one count more, for +Inf. Prometheus' default bounds with more
# in between (steps of 1.25x to 2x), since a latency limit is judged at a bound (docs/monitoring.md)
LATENCY_BUCKETS: tuple[float, ...] = (
    *(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25),
    *(0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 7.5, 10.0),
)


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
        """The q-quantile latency (ms) of the answered requests, interpolated linearly inside its
        bucket as Prometheus' ``histogram_quantile`` does (the first bucket starts at 0; a quantile
        in the +Inf bucket is the largest finite bound, 10 s). None without answered requests."""
        total = sum(self.latency_buckets)
        if not total:
            return None
        rank, below = q * total, 0
        for i, count in enumerate(self.latency_buckets):
            if i == len(LATENCY_BUCKETS):
                return LATENCY_BUCKETS[-1] * 1000
            if count and below + count >= rank:
                lo = LATENCY_BUCKETS[i - 1] if i else 0.0
                hi = LATENCY_BUCKETS[i]
                return (lo + (hi - lo) * max(rank - below, 0.0) / count) * 1000
            below += count
        return LATENCY_BUCKETS[-1] * 1000

    def surely_slower_than(self, ms: float) -> int:
        """How many answered requests certainly took longer than ``ms``: those in buckets whose
        lower bound is ``ms`` or more. Exact when ``ms`` is a bucket bound; otherwise the count
        slower than ``judged_at(ms)``, never more than the truth."""
        bound = self.judged_at(ms)
        return sum(
            count for i, count in enumerate(self.latency_buckets) if i and LATENCY_BUCKETS[i - 1] * 1000 >= bound
        )

    @staticmethod
    def judged_at(ms: float) -> float:
        """The bucket bound (ms) a latency limit of ``ms`` is judged at: the first bound at or
        above it (``inf`` above the last finite bound, where nothing can be told)."""
        return next((b * 1000 for b in LATENCY_BUCKETS if b * 1000 >= ms), float("inf"))

    def quantile_bound_ms(self, q: float) -> float | None:
        """The upper bound (ms) of the bucket holding the q-quantile: the true quantile is at most
        this (``inf`` in the +Inf bucket); None without answered requests."""
        total = sum(self.latency_buckets)
        if not total:
            return None
        rank, seen = max(math.ceil(q * total), 1), 0
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
    confidence: float = 0.999  # one-sided, per rule: how sure a breach must be


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


QUANTILES: Mapping[str, float] = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}
METRICS: tuple[str, ...] = ("error_rate", *QUANTILES)  # what rollback_if and regression may name
UNITS: Mapping[str, str] = {"error_rate": "ratio", **dict.fromkeys(QUANTILES, "ms")}
BASELINE_FLOOR = 0.001  # a previous error rate under 0.1% is taken as 0.1% when comparing


def z_score(confidence: float) -> float:
    """The one-sided standard normal quantile of ``confidence`` (0.999 -> 3.09)."""
    return NormalDist().inv_cdf(confidence)


def wilson(successes: float, n: float, z: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion (each side one-sided at ``z``)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))  # rounding: 0 <= low <= p


def regression_z(new_k: float, new_n: float, old_k: float, old_n: float, factor: float) -> float:
    """The one-sided z statistic of H1: new rate > factor x old rate (old rate at least
    BASELINE_FLOOR), unpooled, with the Agresti-Caffo adjustment (one success and one failure
    added to each side) so that zero counts neither divide by zero nor look certain."""
    p1 = (new_k + 1) / (new_n + 2)
    p0 = max((old_k + 1) / (old_n + 2), BASELINE_FLOOR)
    se = math.sqrt(p1 * (1 - p1) / (new_n + 2) + factor * factor * p0 * (1 - p0) / (old_n + 2))
    return (p1 - factor * p0) / se


def judge(new: Window, previous: Window | None, rules: Rules) -> Verdict:
    """The verdict on the new release's window, against the rules and the previous release.

    Below ``rules.min_requests`` seen requests: ``not_enough_traffic``, whatever the numbers.
    A rule breaches only when the new window is above it with ``rules.confidence`` (one-sided):
    a one-sided test per rule, so a healthy release is rolled back with probability at most
    1 - confidence per rule and judgement, and far less when it is well inside its limits."""
    unknown = sorted(set(rules.rollback_if).union(rules.regression).difference(METRICS))
    if unknown:
        raise ValueError(f"unknown metric {', '.join(unknown)} in the rules (use {', '.join(METRICS)})")
    z = z_score(rules.confidence)
    traffic = _traffic(new, rules)
    if new.seen < rules.min_requests:
        return Verdict("not_enough_traffic", (traffic,))
    findings = [traffic]
    for metric, (op, limit) in rules.rollback_if.items():
        findings.append(
            _error_limit(new, op, limit, z) if metric == "error_rate" else _latency_limit(new, metric, op, limit, z)
        )
    for metric, factor in rules.regression.items():
        if previous is None or previous.seen < rules.min_requests:
            findings.append(_no_baseline(metric, factor, previous, rules))
        elif metric == "error_rate":
            findings.append(_error_regression(new, previous, factor, z))
        else:
            findings.append(_latency_regression(new, previous, metric, factor, z))
    breached = any(f.breached for f in findings)
    return Verdict("breach" if breached else "healthy", tuple(findings))


def _traffic(new: Window, rules: Rules) -> Finding:
    enough = new.seen >= rules.min_requests
    rate = f" ({new.rps:.1f} req/s)" if new.seconds > 0 else ""
    failed = f", {new.failed} not answered" if new.failed else ""
    if enough:
        note = f"{new.seen} requests in {_duration(new.seconds)}{rate}{failed}"
    else:
        note = (
            f"not enough traffic to judge: {new.seen} requests in {_duration(new.seconds)}{failed}, "
            f"{rules.min_requests} needed"
        )
    return Finding("requests", "count", float(new.seen), f">= {rules.min_requests}", None, False, note)


def _passes(op: str, value: float, limit: float) -> bool:
    return value >= limit if op == ">=" else value > limit


def _error_limit(new: Window, op: str, limit: float, z: float) -> Finding:
    low, _high = wilson(new.errors, new.seen, z)
    breached = _passes(op, low, limit)
    rule = f"{op} {_pct(limit)}"
    counted = f"{new.errors} of {new.seen} requests"
    if breached:
        note = f"error rate {_pct(new.error_rate)} {rule} ({counted}; at least {_pct(low)} with {_conf(z)} confidence)"
    elif _passes(op, new.error_rate, limit):
        note = f"error rate {_pct(new.error_rate)} {rule} ({counted}), not yet significant (at least {_pct(low)})"
    else:
        note = f"error rate {_pct(new.error_rate)} ({counted}), within {rule}"
    return Finding("error_rate", "ratio", new.error_rate, rule, None, breached, note)


def _latency_limit(new: Window, metric: str, op: str, limit: float, z: float) -> Finding:
    """p95 > T exactly when more than 5% of the requests took longer than T: a binomial test
    (Wilson lower bound) of the share of requests certainly slower than T against 1 - q. Only
    requests in buckets wholly above T count, so a limit between two bounds is judged at the upper
    one and the buckets never make a healthy release look slow."""
    q = QUANTILES[metric]
    name, value, n = metric.removesuffix("_ms"), new.quantile_ms(q), new.requests
    rule = f"{op} {_ms(limit)}"
    if value is None or n == 0:
        return Finding(metric, "ms", None, rule, None, False, f"{name}: no answered requests")
    bound = Window.judged_at(limit)
    slower = new.surely_slower_than(limit)
    low, _high = wilson(slower, n, z)
    breached = _passes(op, low, 1 - q)
    at = "" if bound == limit else f" (judged at the bucket bound {_ms(bound)})"
    share = f"{_pct(slower / n)} of {n} requests slower than {_ms(bound)}, {_pct(1 - q)} allowed{at}"
    if breached:
        note = f"{name} {_ms(value)} {rule}: {share}; at least {_pct(low)} with {_conf(z)} confidence"
    elif _passes(op, value, limit):
        note = f"{name} {_ms(value)} {rule} by interpolation, not (yet) a breach: {share}"
    else:
        note = f"{name} {_ms(value)}, within {rule}"
    return Finding(metric, "ms", value, rule, None, breached, note)


def _no_baseline(metric: str, factor: float, previous: Window | None, rules: Rules) -> Finding:
    why = (
        "no previous release to compare with"
        if previous is None
        else f"the previous release had {previous.seen} requests, {rules.min_requests} needed to compare"
    )
    rule = f"{factor:g}x previous"
    name = "error rate" if metric == "error_rate" else metric.removesuffix("_ms")
    return Finding(metric, UNITS[metric], None, rule, None, False, f"{name} {rule}: {why}")


def _error_regression(new: Window, old: Window, factor: float, z: float) -> Finding:
    stat = regression_z(new.errors, new.seen, old.errors, old.seen, factor) + 0.0  # no "-0.0"
    breached = stat > z and new.error_rate > factor * max(old.error_rate, BASELINE_FLOOR)
    rule = f"{factor:g}x previous"
    both = f"error rate {_pct(new.error_rate)} ({new.errors} of {new.seen}) against {_pct(old.error_rate)} before"
    verdict = (
        f"more than {rule} (z = {stat:.1f})" if breached else f"not significantly more than {rule} (z = {stat:.1f})"
    )
    return Finding("error_rate", "ratio", new.error_rate, rule, old.error_rate, breached, f"{both}: {verdict}")


def _latency_regression(new: Window, old: Window, metric: str, factor: float, z: float) -> Finding:
    """The previous release's quantile at its upper confidence bound: its quantile at
    q + z*sqrt(q(1-q)/n) (the order-statistic bound), interpolated in its bucket. The new release
    breaches when significantly more than 1 - q of its requests are certainly slower than factor
    x that bound (in buckets wholly above it)."""
    q, name = QUANTILES[metric], metric.removesuffix("_ms")
    rule = f"{factor:g}x previous"
    value, before = new.quantile_ms(q), old.quantile_ms(q)
    if value is None or before is None or new.requests == 0 or old.requests == 0:
        return Finding(metric, "ms", value, rule, before, False, f"{name} {rule}: no answered requests to compare")
    q_high = min(1.0, q + z * math.sqrt(q * (1 - q) / old.requests))
    before_high = old.quantile_ms(q_high) or float("inf")
    limit = factor * before_high
    both = f"{name} {_ms(value)} against {_ms(before)} before"
    if limit == float("inf"):
        note = f"{both}: cannot compare, the previous release's {name} is above the last bucket bound"
        return Finding(metric, "ms", value, rule, before, False, note)
    bound = Window.judged_at(limit)
    slower = new.surely_slower_than(limit)
    low, _high = wilson(slower, new.requests, z)
    breached = low > 1 - q
    share = (
        f"{_pct(slower / new.requests)} of {new.requests} requests slower than {_ms(bound)} "
        f"({factor:g}x {_ms(before_high)}, the previous {name} at its upper bound), {_pct(1 - q)} allowed"
    )
    verdict = f"more than {rule}" if breached else f"within {rule}"
    return Finding(metric, "ms", value, rule, before, breached, f"{both}: {verdict}, {share}")


def _pct(ratio: float) -> str:
    percent = ratio * 100
    return f"{percent:.2g}%" if 0 < percent < 1 else f"{percent:.3g}%" if percent < 100 else "100%"


def _ms(ms: float) -> str:
    return f"{ms / 1000:.3g} s" if ms >= 1000 else f"{ms:.3g} ms"


def _conf(z: float) -> str:
    return f"{NormalDist().cdf(z) * 100:.3g}%"


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"
