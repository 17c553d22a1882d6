"""The Prometheus signal against the real `prometheus` binary: it scrapes a real metrics endpoint
(token-protected, like the agent's /metrics) every second; the test changes the series and
``prometheus_findings`` reports breached / within as Prometheus sees them. Placeholders are
filled in and escaped as Prometheus's own parser reads them; Prometheus's errors come back named."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.conftest import wait_until
from tests.monitor.promstack import Binary, MetricsTarget, prometheus

from conveyor.devserver import free_port
from conveyor.domain.monitoring import Finding
from conveyor.errors import InvalidInput
from conveyor.monitor.prometheus import (
    PrometheusError,
    QueryContext,
    escape_label_value,
    instant_query,
    prometheus_findings,
    promql_duration,
    render_query,
)
from conveyor.spec.monitor_signals import QuerySpec

SHOP = QueryContext("shop", "production", "v2.0.0", "v1.9.0", interval=5.0)
SELECT = 'service="{service}",environment="{environment}",version="{version}"'
ERROR_RATIO = QuerySpec(
    query=f"sum(shop_errors{{{SELECT}}}) / sum(shop_requests{{{SELECT}}})", threshold="> 5%", unit="ratio"
)
SUCCESS = QuerySpec(
    query=f"1 - sum(shop_errors{{{SELECT}}}) / sum(shop_requests{{{SELECT}}})", threshold="< 0.95", bad_when="lower"
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MetricsTarget, Binary]]:
    target = MetricsTarget(token="scrape-token-for-tests").start()
    prom = prometheus(tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{target.port}", token=target.token)
    try:
        prom.start()
        yield target, prom
    finally:
        prom.stop()
        target.stop()


def now() -> datetime:
    return datetime.now(UTC)


def settle(url: str, promql: str, expected: float) -> None:
    """Wait until Prometheus has scraped the value the test set."""
    wait_until(lambda: instant_query(url, promql) == expected, timeout=20, what=f"{promql} == {expected}")


def findings(url: str, **queries: QuerySpec) -> dict[str, Finding]:
    return {f.signal: f for f in prometheus_findings(queries, url, now(), SHOP)}


def test_a_query_over_scraped_series_breaches_when_prometheus_sees_the_errors(
    stack: tuple[MetricsTarget, Binary],
) -> None:
    target, prom = stack
    labels = {"service": "shop", "environment": "production", "version": "v2.0.0"}
    target.set("shop_requests", 1000, **labels)
    target.set("shop_errors", 10, **labels)
    target.set("shop_requests", 100, **{**labels, "service": "cart"})  # another service, all errors
    target.set("shop_errors", 100, **{**labels, "service": "cart"})
    target.set("shop_requests", 100, **{**labels, "version": "v1.9.0"})  # the previous release, all errors
    target.set("shop_errors", 100, **{**labels, "version": "v1.9.0"})
    settle(prom.url, 'sum(shop_errors{service="shop",version="v2.0.0"})', 10)
    healthy = findings(prom.url, error_ratio=ERROR_RATIO, success=SUCCESS)
    assert healthy["error_ratio"] == Finding(
        "error_ratio", "ratio", 0.01, "> 5%", None, False, "error_ratio = 0.01 ratio (within > 5%; higher is worse)"
    )
    assert (healthy["success"].value, healthy["success"].breached) == (0.99, False)
    assert target.scrapes > 0

    target.set("shop_errors", 120, **labels)
    settle(prom.url, 'sum(shop_errors{service="shop",version="v2.0.0"})', 120)
    bad = findings(prom.url, error_ratio=ERROR_RATIO, success=SUCCESS)
    assert (bad["error_ratio"].value, bad["error_ratio"].breached) == (0.12, True)
    assert "breach > 5%" in bad["error_ratio"].note
    assert (bad["success"].value, bad["success"].breached) == (0.88, True)
    assert "lower is worse" in bad["success"].note


def test_interval_is_the_range_of_a_rate_over_a_counter(stack: tuple[MetricsTarget, Binary]) -> None:
    target, prom = stack
    target.set("shop_http_total", 0, kind="counter", service="shop")
    settle(prom.url, 'shop_http_total{service="shop"}', 0)
    target.set("shop_http_total", 50, kind="counter", service="shop")
    settle(prom.url, 'shop_http_total{service="shop"}', 50)
    spec = QuerySpec(query='sum(increase(shop_http_total{service="{service}"}[{interval}]))', threshold="> 10")
    assert "[5s]" in render_query(spec.query, SHOP)
    found = findings(prom.url, burst=spec)["burst"]
    assert found.breached and found.value is not None and found.value > 10, found


def test_label_values_are_escaped_as_prometheus_reads_them(stack: tuple[MetricsTarget, Binary]) -> None:
    target, prom = stack
    odd = 'v3 "quoted" back\\slash'
    target.set("shop_version_info", 7, service="shop", version=odd)
    settle(prom.url, "sum(shop_version_info)", 7)
    context = QueryContext("shop", "production", odd, None, interval=5.0)
    for quote in ('"', "'"):
        promql = render_query(f"shop_version_info{{version={quote}{{version}}{quote}}}", context)
        assert instant_query(prom.url, promql) == 7, promql
    injected = QueryContext("shop", "production", '"} or vector(1000) or x{a="', None, interval=5.0)
    promql = render_query('sum(shop_version_info{version="{version}"})', injected)
    assert instant_query(prom.url, promql) is None  # one odd label value, matching nothing: no data


def test_what_is_not_one_number_comes_back_named(stack: tuple[MetricsTarget, Binary]) -> None:
    target, prom = stack
    for service in ("a", "b", "c", "d"):
        target.set("multi_series", 1, service=service)
    settle(prom.url, "count(multi_series)", 4)
    with pytest.raises(InvalidInput) as several:
        instant_query(prom.url, "multi_series")
    assert 'answers 4 series (multi_series{instance="127.0.0.1:' in several.value.message
    assert "and 1 more" in several.value.message and "sum(" in (several.value.fix or "")
    with pytest.raises(InvalidInput) as refused:
        instant_query(prom.url, "sum(multi_series")
    assert "Prometheus refused the query 'sum(multi_series'" in refused.value.message
    assert "parse error" in refused.value.message  # Prometheus's own words
    with pytest.raises(InvalidInput, match="a range vector"):
        instant_query(prom.url, "multi_series[5s]")
    assert instant_query(prom.url, "no_such_metric_anywhere") is None
    assert instant_query(prom.url, "scalar(count(multi_series))") == 4
    assert instant_query(prom.url, "0/0") is None  # NaN: no data, as a ratio of no requests is
    found = findings(
        prom.url,
        many=QuerySpec(query="multi_series", threshold="> 0"),
        empty=QuerySpec(query="no_such_metric_anywhere", threshold="> 0"),
        before=QuerySpec(query='x{version="{previous_version}"}', threshold="> 0"),
    )
    assert all(f.value is None and not f.breached for f in found.values())
    assert "answers 4 series" in found["many"].note
    assert found["empty"].note == "empty: no data (the query returned no series)"
    context = QueryContext("shop", "production", "v1", None, 5.0)
    (first,) = prometheus_findings(
        {"before": QuerySpec(query='x{v="{previous_version}"}', threshold="> 0")}, prom.url, now(), context
    )
    assert "has no previous release in production" in first.note


def test_an_unreachable_or_unset_prometheus_is_a_finding_without_value() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PrometheusError, match=f"Prometheus at {nowhere} is unreachable"):
        instant_query(nowhere, "up", timeout=2)
    (down,) = prometheus_findings({"errors": ERROR_RATIO}, nowhere, now(), SHOP, timeout=2)
    assert (down.value, down.breached) == (None, False) and "unreachable" in down.note
    (unset,) = prometheus_findings({"errors": ERROR_RATIO}, None, now(), SHOP)
    assert "CONVEYOR_PROMETHEUS_URL" in unset.note and not unset.breached


def test_not_prometheus_at_the_url(tmp_path: Path) -> None:
    target = MetricsTarget(token="t").start()  # answers 404 to /api/v1/query: some other server
    try:
        with pytest.raises(PrometheusError, match="without Prometheus's JSON"):
            instant_query(f"http://127.0.0.1:{target.port}", "up")
    finally:
        target.stop()


# --- pure parts ---------------------------------------------------------------------------------


def test_placeholders_are_escaped_for_their_quotes_and_interval_is_a_duration() -> None:
    assert escape_label_value("a\"b\\c'd\ne") == "a\\\"b\\\\c'd\\ne"
    assert escape_label_value("a\"b'c", "'") == "a\"b\\'c"
    assert [promql_duration(s) for s in (5, 60, 1.5, 0.25)] == ["5s", "60s", "1500ms", "250ms"]
    context = QueryContext('sh"op', "prod", "v'1", "v0", 10)
    text = render_query('x{service="{service}",v=\'{version}\',p="{previous_version}"}[{interval}]', context)
    assert text == 'x{service="sh\\"op",v=\'v\\\'1\',p="v0"}[10s]'
    assert render_query('x{a="{{service}}"}', context) == 'x{a="{sh\\"op}"}'  # only the placeholder itself
    with pytest.raises(InvalidInput, match="not a usable interval"):
        promql_duration(0)


@pytest.mark.parametrize(
    ("threshold", "value", "breached"),
    [("> 5%", 0.06, True), ("> 5%", 0.05, False), (">= 800", 800, True), ("< 0.99", 0.98, True), ("<= 1", 2, False)],
)
def test_thresholds_compare_as_written(threshold: str, value: float, breached: bool) -> None:
    assert QuerySpec(query="x", threshold=threshold).breached(value) is breached


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"query": "x", "threshold": "5%"}, "is not a threshold"),
        ({"query": "x", "threshold": 5}, "has no comparison"),
        ({"query": "x{{nope}}", "threshold": "> 1"}, "unknown placeholder {nope}"),
        ({"query": "", "threshold": "> 1"}, "at least 1 character"),
        ({"query": "x", "threshold": "> 1", "bad_when": "lower"}, "contradicts threshold"),
        ({"query": "x{service={service}}", "threshold": "> 1"}, "write it inside a quoted string"),
        ({"query": "x{service=`{service}`}", "threshold": "> 1"}, "write it inside a quoted string"),
        ({"query": 'rate(x["{interval}"])', "threshold": "> 1"}, "write it outside quotes"),
        ({"query": 'x{a="\\"{version}"}', "threshold": "> 1"}, None),  # an escaped quote does not end the string
    ],
)
def test_query_specs_that_cannot_act_are_refused(fields: dict[str, object], says: str | None) -> None:
    if says is None:
        QuerySpec.model_validate(fields)
        return
    with pytest.raises(ValueError, match=says):
        QuerySpec.model_validate(fields)
