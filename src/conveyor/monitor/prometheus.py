"""The Prometheus signal: named PromQL instant queries (``monitor.queries``) run against the
configured Prometheus (CONVEYOR_PROMETHEUS_URL) through its HTTP API, ``GET /api/v1/query``.

A query answers one number: a scalar, or an instant vector with exactly one series. An empty vector
(or NaN, e.g. a ratio of no requests) is "no data". Everything else is an error that says what came
back and how to fix the query. Placeholders ``{service}``, ``{environment}``, ``{version}``,
``{previous_version}`` are replaced by the deployment's values escaped for a PromQL string literal
(write them inside quotes: ``{service="{service}"}``); ``{interval}`` by the monitor's interval as a
PromQL duration (``[{interval}]``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from conveyor import httpclient
from conveyor.domain.monitoring import Finding
from conveyor.errors import ConveyorError, InvalidInput
from conveyor.spec.monitor_signals import PLACEHOLDERS, QuerySpec, placeholders

_SHOWN_SERIES = 3


class PrometheusError(ConveyorError):
    """Prometheus could not be asked, or answered something that is not one number."""

    kind = "prometheus"
    http_status = 502


@dataclass(frozen=True)
class QueryContext:
    """The deployment a query is about: what its placeholders stand for."""

    service: str
    environment: str
    version: str
    previous_version: str | None
    interval: float  # seconds between samples


def escape_label_value(value: str, quote: str = '"') -> str:
    """``value`` as the inside of a PromQL string literal quoted with ``quote`` (``"`` or ``'``):
    PromQL reads Go's escapes, where each quote may escape only itself."""
    out = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
    return out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def promql_duration(seconds: float) -> str:
    """Seconds as a PromQL duration: ``10s``, ``1m30s`` is ``90s``, ``1.5`` is ``1500ms``."""
    if seconds <= 0 or not math.isfinite(seconds):
        raise InvalidInput(f"{seconds!r} is not a usable interval for {{interval}}", fix="use an interval above 0")
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{max(ms, 1)}ms"


def render_query(query: str, context: QueryContext) -> str:
    """The query with its placeholders filled in, each label value escaped for the string literal
    it stands in. ``{previous_version}`` with no previous release raises: the query means nothing
    then."""
    out, last = [], 0
    for match, quote in placeholders(query):
        name = match.group(1)
        if name not in PLACEHOLDERS:
            continue
        if name == "interval":
            text = promql_duration(context.interval)
        else:
            value: str | None = getattr(context, name)
            if value is None:
                raise InvalidInput(
                    f"the query uses {{{name}}}, and {context.service} has no previous release in "
                    f"{context.environment}",
                    fix="it is judged once there is one; until then this query has no value",
                )
            if quote not in ('"', "'"):
                raise InvalidInput(
                    f"{{{name}}} stands outside a quoted string in {query!r}",
                    fix=f'write it inside quotes, e.g. {{{name}="{{{name}}}"}}',
                )
            text = escape_label_value(value, quote)
        out += [query[last : match.start()], text]
        last = match.end()
    return "".join([*out, query[last:]])


def instant_query(
    url: str,
    promql: str,
    at: datetime | None = None,
    *,
    timeout: float = 5.0,
    token: str | None = None,
    client: httpx.Client | None = None,
) -> float | None:
    """The one number ``promql`` evaluates to at ``at`` (Prometheus's "now" when None); None when
    there is no data (an empty vector, or NaN)."""
    endpoint = url.rstrip("/") + "/api/v1/query"
    params: dict[str, str] = {"query": promql}
    if at is not None:
        params["time"] = f"{at.timestamp():.3f}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        if client is not None:
            response = client.get(endpoint, params=params, headers=headers, timeout=timeout)
        else:
            response = httpclient.get(endpoint, params=params, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise PrometheusError(
            f"Prometheus at {url} is unreachable: {type(exc).__name__}: {exc}",
            fix="start Prometheus, or set CONVEYOR_PROMETHEUS_URL to its address",
        ) from None
    return _value(url, promql, response)


def _value(url: str, promql: str, response: httpx.Response) -> float | None:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
        raise PrometheusError(
            f"{url} answered HTTP {response.status_code} without Prometheus's JSON: {response.text[:200]!r}",
            fix="set CONVEYOR_PROMETHEUS_URL to the Prometheus server itself (e.g. http://HOST:9090)",
        )
    if body["status"] == "error":
        kind, text = body.get("errorType", "error"), body.get("error", "")
        if kind == "bad_data":
            raise InvalidInput(f"Prometheus refused the query {promql!r}: {text}", fix="correct the PromQL")
        raise PrometheusError(f"Prometheus could not run {promql!r} ({kind}): {text}", fix="look at Prometheus")
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list):
        return _number(result[1])
    if kind == "vector" and isinstance(result, list):
        if not result:
            return None
        if len(result) > 1:
            shown = ", ".join(_series(r.get("metric", {})) for r in result[:_SHOWN_SERIES])
            more = f" and {len(result) - _SHOWN_SERIES} more" if len(result) > _SHOWN_SERIES else ""
            raise InvalidInput(
                f"the query {promql!r} answers {len(result)} series ({shown}{more}), not one number",
                fix="aggregate it (sum(...), max(...)) or narrow its labels to one series",
            )
        return _number(result[0]["value"][1])
    what = {"matrix": "a range vector", "string": "a string"}.get(str(kind), repr(kind))
    raise InvalidInput(
        f"the query {promql!r} answers {what}, not one number",
        fix="make it an instant value: e.g. rate(x[5m]) or avg_over_time(x[5m]) instead of x[5m]",
    )


def _number(text: object) -> float | None:
    value = float(str(text))  # Prometheus writes sample values as strings: "0.5", "NaN", "+Inf"
    return None if math.isnan(value) else value


def _series(labels: Mapping[str, str]) -> str:
    name = labels.get("__name__", "")
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{inner}}}"


def prometheus_findings(
    queries: Mapping[str, QuerySpec],
    url: str | None,
    at: datetime,
    context: QueryContext,
    *,
    timeout: float = 5.0,
    token: str | None = None,
) -> list[Finding]:
    """One finding per query, in the order given. A query that cannot be run (Prometheus down, a
    query Prometheus refuses, several series, no previous release) is a finding with no value and
    the reason in its note: it never breaches, and it never passes silently either."""
    findings = []
    with httpclient.client() as client:
        for name, spec in queries.items():
            value, problem = None, None
            try:
                if not url:
                    raise PrometheusError(
                        "no Prometheus is configured", fix="set CONVEYOR_PROMETHEUS_URL to run monitor.queries"
                    )
                promql = render_query(spec.query, context)
                value = instant_query(url, promql, at, timeout=timeout, token=token, client=client)
            except ConveyorError as exc:
                problem = exc.text
            findings.append(_finding(name, spec, value, problem))
    return findings


def _finding(name: str, spec: QuerySpec, value: float | None, problem: str | None) -> Finding:
    direction = spec.bad_when or spec.direction
    if problem is not None:
        note = f"{name}: no value: {problem}"
    elif value is None:
        note = f"{name}: no data (the query returned no series)"
    else:
        breached = spec.breached(value)
        verdict = "breach" if breached else "within"
        unit = f" {spec.unit}" if spec.unit else ""
        note = f"{name} = {value:g}{unit} ({verdict} {spec.threshold}; {direction} is worse)"
        return Finding(name, spec.unit, value, spec.threshold, None, breached, note)
    return Finding(name, spec.unit, None, spec.threshold, None, False, note)
