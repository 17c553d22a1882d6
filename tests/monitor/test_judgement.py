"""The pure judgement of a release's window (domain/monitoring.py): the minimum sample, absolute
limits on error rate and latency quantiles, regression against the previous release, the notes a
person reads, and properties that must hold for any counts (hypothesis)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.domain.monitoring import (
    LATENCY_BUCKETS,
    Rules,
    Verdict,
    Window,
    judge,
    regression_z,
    wilson,
    z_score,
)

NBUCKETS = len(LATENCY_BUCKETS) + 1
MS = [b * 1000 for b in LATENCY_BUCKETS]  # bucket bounds in ms


def bucket_of(ms: float) -> int:
    return next((i for i, bound in enumerate(MS) if ms <= bound), len(MS))


def window(seen: int, errors: int = 0, failed: int = 0, ms: float = 8.0, seconds: float = 60.0) -> Window:
    """``seen`` requests (``failed`` of them not answered), all answered ones taking ``ms``."""
    buckets = [0] * NBUCKETS
    buckets[bucket_of(ms)] = seen - failed
    return Window(seen - failed, errors, failed, tuple(buckets), seconds)


def latencies(times_ms: list[float], errors: int = 0) -> Window:
    buckets = [0] * NBUCKETS
    for t in times_ms:
        buckets[bucket_of(t)] += 1
    return Window(len(times_ms), errors, 0, tuple(buckets), 60.0)


ERROR_2PCT = Rules(rollback_if={"error_rate": (">", 0.02)})
P95_800 = Rules(rollback_if={"p95_ms": (">", 800.0)})


def breached(verdict: Verdict) -> list[str]:
    return [f.signal for f in verdict.findings if f.breached]


# --- the window itself ---------------------------------------------------------------------------


def test_window_rates_and_quantiles() -> None:
    w = latencies([3.0] * 90 + [300.0] * 10, errors=5)
    assert (w.seen, w.error_rate, w.rps) == (100, 0.05, 100 / 60)
    assert w.quantile_ms(0.5) == pytest.approx(2.5 + 2.5 * 50 / 90)  # interpolated in (2.5, 5] ms
    assert w.quantile_ms(0.95) == pytest.approx(250 + 250 * 5 / 10)  # in (250, 500] ms
    assert (w.quantile_bound_ms(0.5), w.quantile_bound_ms(0.95), w.quantile_bound_ms(0.9)) == (5.0, 500.0, 5.0)
    assert w.surely_slower_than(250.0) == 10 and w.surely_slower_than(5.0) == 10 and w.surely_slower_than(2.5) == 100
    assert w.surely_slower_than(375.0) == 0  # in (250, 500] ms: not certainly slower than 375 ms
    assert (Window.judged_at(375.0), Window.judged_at(500.0), Window.judged_at(20_000.0)) == (500.0, 500.0, math.inf)
    assert Window().quantile_ms(0.95) is None and Window().error_rate == 0.0 and Window().rps == 0.0
    slow = latencies([20_000.0] * 10)
    assert slow.quantile_ms(0.5) == 10_000.0  # the +Inf bucket: the largest finite bound, as Prometheus
    assert slow.surely_slower_than(10_000.0) == 10 and slow.surely_slower_than(30_000.0) == 0
    assert slow.quantile_bound_ms(0.5) == math.inf


def test_merged_adds_counts_and_time() -> None:
    a, b = window(100, errors=2, failed=1, ms=3), window(50, errors=1, ms=300, seconds=30)
    m = a.merged(b)
    assert (m.requests, m.errors, m.failed, m.seconds, sum(m.latency_buckets)) == (149, 3, 1, 90.0, 149)
    assert m == b.merged(a)


# --- minimum sample --------------------------------------------------------------------------------


def test_three_requests_one_a_500_is_not_enough_traffic() -> None:
    verdict = judge(window(3, errors=1), None, ERROR_2PCT)
    assert verdict.state == "not_enough_traffic"
    assert not verdict.breaches
    assert verdict.findings[0].note == "not enough traffic to judge: 3 requests in 60 s, 100 needed"


def test_all_failing_below_the_minimum_is_still_not_judged() -> None:
    rules = Rules(rollback_if={"error_rate": (">", 0.02), "p95_ms": (">", 1.0)}, min_requests=50)
    assert judge(window(49, errors=49, ms=9000), None, rules).state == "not_enough_traffic"
    assert judge(window(50, errors=49, ms=9000), None, rules).state == "breach"


def test_failed_connections_count_towards_the_sample_and_the_errors() -> None:
    w = window(120, errors=30, failed=30)  # 90 answered, 30 never answered
    verdict = judge(w, None, ERROR_2PCT)
    assert verdict.state == "breach"
    assert "30 not answered" in verdict.findings[0].note


# --- absolute error-rate limit ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seen", "errors", "state"),
    [
        (100, 0, "healthy"),
        (100, 1, "healthy"),
        (100, 3, "healthy"),  # 3% > 2% observed, but 3 of 100 is no evidence
        (100, 10, "breach"),  # 10% against 2%: caught at the minimum sample
        (400, 12, "healthy"),  # 3%: not significant
        (400, 20, "breach"),  # 5%
        (10_000, 300, "breach"),  # 3% over 10,000: significant
        (10_000, 200, "healthy"),  # exactly 2%
        (99, 99, "not_enough_traffic"),
    ],
)
def test_error_rate_limit(seen: int, errors: int, state: str) -> None:
    assert judge(window(seen, errors), None, ERROR_2PCT).state == state


def test_greater_or_equal_differs_from_greater_only_at_the_bound() -> None:
    zero = Rules(rollback_if={"error_rate": (">", 0.0)})
    assert judge(window(200, 1), None, zero).state == "breach"  # any error at all
    assert judge(window(200, 0), None, zero).state == "healthy"
    at_least_zero = Rules(rollback_if={"error_rate": (">=", 0.0)})
    assert judge(window(200, 0), None, at_least_zero).state == "breach"


def test_notes_read_well_and_carry_units() -> None:
    verdict = judge(window(412, 40), None, ERROR_2PCT)
    finding = verdict.breaches[0]
    assert (finding.signal, finding.unit, finding.threshold, finding.baseline) == ("error_rate", "ratio", "> 2%", None)
    assert finding.value == pytest.approx(40 / 412)
    assert finding.note.startswith("error rate 9.71% > 2% (40 of 412 requests; at least ")
    assert finding.note.endswith("with 99.9% confidence)")
    assert verdict.findings[0].note == "412 requests in 60 s (6.9 req/s)"
    within = judge(window(412, 2), None, ERROR_2PCT).findings[1].note
    assert within == "error rate 0.49% (2 of 412 requests), within > 2%"
    pending = judge(window(100, 3), None, ERROR_2PCT).findings[1].note
    assert pending.startswith("error rate 3% > 2% (3 of 100 requests), not yet significant")


def test_ten_percent_errors_is_caught_within_a_few_hundred_requests() -> None:
    rng = random.Random(13)
    caught_at = []
    for _ in range(200):
        errors = seen = 0
        while True:
            seen += 1
            errors += rng.random() < 0.10
            if seen >= 100 and seen % 10 == 0 and judge(window(seen, errors), None, ERROR_2PCT).state == "breach":
                caught_at.append(seen)
                break
    caught_at.sort()
    assert caught_at[len(caught_at) // 2] <= 150, caught_at  # median
    assert caught_at[-1] <= 400, caught_at


# --- latency limits ------------------------------------------------------------------------------


def test_p95_limit_is_a_test_of_the_share_slower_than_it() -> None:
    healthy = judge(latencies([300.0] * 380 + [700.0] * 32), None, P95_800)
    assert healthy.state == "healthy"
    p95 = healthy.findings[1]
    assert (p95.signal, p95.unit, p95.threshold) == ("p95_ms", "ms", "> 800 ms")
    assert p95.note.startswith("p95 ") and p95.note.endswith(", within > 800 ms")
    slow = judge(latencies([300.0] * 300 + [900.0] * 112), None, P95_800)
    assert slow.state == "breach"
    assert slow.breaches[0].value is not None and slow.breaches[0].value > 800
    assert "of 412 requests slower than 800 ms, 5% allowed" in slow.breaches[0].note


def test_a_limit_between_bucket_bounds_is_judged_at_the_next_bound() -> None:
    rules = Rules(rollback_if={"p95_ms": (">", 650.0)})
    in_between = judge(latencies([300.0] * 300 + [700.0] * 112), None, rules)  # all in (600, 800] ms
    assert in_between.state == "healthy"
    assert in_between.findings[1].note == (
        "p95 763 ms > 650 ms by interpolation, not (yet) a breach: 0% of 412 requests slower than 800 ms, "
        "5% allowed (judged at the bucket bound 800 ms)"
    )
    above = judge(latencies([300.0] * 300 + [900.0] * 112), None, rules)
    assert above.state == "breach" and "slower than 800 ms" in above.breaches[0].note


def test_p99_and_p50_limits() -> None:
    w = latencies([40.0] * 900 + [3000.0] * 100)  # 10% take 3 s
    assert breached(judge(w, None, Rules(rollback_if={"p99_ms": (">", 1000.0)}))) == ["p99_ms"]
    assert breached(judge(w, None, Rules(rollback_if={"p50_ms": (">", 1000.0)}))) == []
    assert breached(judge(w, None, Rules(rollback_if={"p50_ms": (">", 20.0)}))) == ["p50_ms"]


def test_latency_limit_without_answers_has_no_value() -> None:
    verdict = judge(window(150, errors=150, failed=150), None, P95_800)
    assert verdict.findings[1].value is None and not verdict.findings[1].breached


# --- regression against the previous release ---------------------------------------------------


REGRESS = Rules(regression={"error_rate": 2.0, "p95_ms": 1.5})


@pytest.mark.parametrize(
    ("new", "old", "state"),
    [
        ((200, 1), (5000, 0), "healthy"),  # 0 errors before: 1 error now is not a regression
        ((200, 3), (5000, 0), "healthy"),
        ((200, 12), (5000, 0), "breach"),  # 6% against nothing
        ((500, 10), (5000, 100), "healthy"),  # 2% against 2%
        ((500, 25), (5000, 100), "healthy"),  # 5% against 2%: 2.5x, but not significant over 500
        ((2000, 160), (5000, 100), "breach"),  # 8% against 2%: 4x, significant
        ((100, 3), (100, 1), "healthy"),
    ],
)
def test_error_rate_regression(new: tuple[int, int], old: tuple[int, int], state: str) -> None:
    verdict = judge(window(*new), window(*old), Rules(regression={"error_rate": 2.0}))
    assert verdict.state == state, verdict.findings[1].note


def test_regression_notes_and_baseline() -> None:
    verdict = judge(window(400, 40), window(3000, 9), Rules(regression={"error_rate": 2.0}))
    f = verdict.breaches[0]
    assert (f.threshold, f.baseline) == ("2x previous", 0.003)
    assert f.note.startswith("error rate 10% (40 of 400) against 0.3% before: more than 2x previous (z = ")


def test_regression_needs_a_previous_release_with_traffic() -> None:
    none = judge(window(400, 40), None, REGRESS)
    assert none.state == "healthy"
    assert [f.note for f in none.findings[1:]] == [
        "error rate 2x previous: no previous release to compare with",
        "p95 1.5x previous: no previous release to compare with",
    ]
    quiet = judge(window(400, 40), window(20, 0), REGRESS)
    assert "the previous release had 20 requests, 100 needed to compare" in quiet.findings[1].note


def test_latency_regression() -> None:
    before = latencies([20.0] * 950 + [60.0] * 50)
    same = latencies([20.0] * 475 + [60.0] * 25)
    assert judge(same, before, REGRESS).state == "healthy"
    slower = latencies([20.0] * 400 + [200.0] * 100)  # 20% of requests take 200 ms now
    verdict = judge(slower, before, REGRESS)
    assert breached(verdict) == ["p95_ms"]
    f = verdict.breaches[0]
    assert f.baseline is not None and f.value is not None and f.value > 1.5 * f.baseline
    assert f.note == (
        "p95 188 ms against 20 ms before: more than 1.5x previous, 20% of 500 requests slower than 100 ms "
        "(1.5x 60.6 ms, the previous p95 at its upper bound), 5% allowed"
    )


def test_unknown_metric_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown metric p90_ms"):
        judge(window(100), None, Rules(rollback_if={"p90_ms": (">", 1.0)}))


# --- the statistics ----------------------------------------------------------------------------


def test_wilson_and_z() -> None:
    assert z_score(0.999) == pytest.approx(3.090, abs=1e-3)
    low, high = wilson(10, 100, z_score(0.975))
    assert (round(low, 4), round(high, 4)) == (0.0552, 0.1744)  # the textbook 95% interval of 10/100
    assert wilson(0, 0, 3.0) == (0.0, 1.0)
    assert regression_z(0, 1000, 0, 1000, 2.0) < 0


def test_healthy_traffic_is_almost_never_a_breach() -> None:
    """2,000 simulated windows of 100 to 2,000 requests at 0 to 1% errors against "> 2%"."""
    rng = random.Random(2026)
    false = 0
    for _ in range(2000):
        seen, rate = rng.randint(100, 2000), rng.uniform(0.0, 0.01)
        errors = sum(rng.random() < rate for _ in range(seen))
        false += judge(window(seen, errors), None, ERROR_2PCT).state == "breach"
    assert false == 0


counts = st.integers(min_value=0, max_value=5000)


@settings(max_examples=300, deadline=None)
@given(seen=counts, errors=counts, failed=counts, min_requests=st.integers(1, 500), limit=st.floats(0.0, 0.5))
def test_properties(seen: int, errors: int, failed: int, min_requests: int, limit: float) -> None:
    failed = min(failed, seen)
    errors = min(max(errors, failed), seen)
    w = window(seen, errors, failed)
    rules = Rules(rollback_if={"error_rate": (">", limit), "p95_ms": (">", 500.0)}, min_requests=min_requests)
    verdict = judge(w, None, rules)
    if seen < min_requests:
        assert verdict.state == "not_enough_traffic" and not verdict.breaches
    else:
        assert verdict.state in ("healthy", "breach")
        assert (verdict.state == "breach") == bool(verdict.breaches)
    if w.error_rate <= limit:  # never a breach at or under the limit as observed
        assert "error_rate" not in breached(verdict)
    if "error_rate" in breached(verdict) and errors < seen:  # one more error never makes it pass
        assert "error_rate" in breached(judge(window(seen, errors + 1, failed), None, rules))


@settings(max_examples=200, deadline=None)
@given(new=st.tuples(counts, counts), old=st.tuples(counts, counts), factor=st.floats(1.0, 5.0))
def test_regression_never_below_factor_times_previous(
    new: tuple[int, int], old: tuple[int, int], factor: float
) -> None:
    seen, errors = max(new[0], 100), new[1]
    old_seen, old_errors = max(old[0], 100), old[1]
    a, b = window(seen, min(errors, seen)), window(old_seen, min(old_errors, old_seen))
    verdict = judge(a, b, Rules(regression={"error_rate": factor}))
    if a.error_rate <= factor * b.error_rate:
        assert not verdict.breaches
