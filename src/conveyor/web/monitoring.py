"""The monitoring chart of a deployment: ``GET /deployments/{id}/monitoring.svg`` (signed-in
viewers, as the deployment's page), drawn by ``web/charts.py`` from the stored samples.

Per interval, the new release's error rate and p95; the previous release's own numbers over the
window of the same length before the switch (what the judgement compares with) as a reference
line; the thresholds of ``rollback_if`` (and ``regression`` once the baseline is known); markers
for the deploy (the switch), each flag change in the environment during the window, and the
breach."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response

from conveyor.domain.monitoring import BASELINE_FLOOR, Window
from conveyor.engine.deployments import resolve_id
from conveyor.engine.monitoring_end import flag_changes
from conveyor.errors import ConveyorError
from conveyor.runtime import Runtime
from conveyor.spec.models import MonitorSpec
from conveyor.store import deployments as store
from conveyor.store import monitor_samples
from conveyor.store import services as service_store
from conveyor.store.monitor_samples import Monitoring, Sample
from conveyor.web.charts import Chart, Level, Marker, Panel, Series, render
from conveyor.web.pages import PageRoute, runtime
from conveyor.web.session import SessionDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)
SVG = "image/svg+xml"


@dataclass(frozen=True)
class ChartInput:
    """What the chart shows, read from the store (and the agent, for the baseline)."""

    service: str
    environment: str
    version: str | None
    previous_version: str | None
    monitoring: Monitoring
    samples: tuple[Sample, ...]
    spec: MonitorSpec | None  # the environment's monitor: now (None: no longer there)
    previous: Window | None  # the previous release before the switch, as long as the samples so far
    flags: tuple[dict[str, Any], ...]


def _offset(moment: datetime, start: datetime) -> float:
    return (moment - start).total_seconds()


def _threshold(metric: str, rule: str) -> float:
    """ "> 2%" -> 2.0 (percent, as the chart's error rate), "> 800" -> 800.0 (ms)."""
    number = float(rule.lstrip(">=").strip().rstrip("%"))
    return number if rule.strip().endswith("%") or metric != "error_rate" else number * 100


def chart_for(data: ChartInput) -> Chart:
    """The chart of ``data``: pure, so tests build it from values."""
    mon, start = data.monitoring, data.monitoring.started_at
    new = f"{data.version or 'new release'} (per interval)"
    errors = Series(
        new,
        tuple((_offset(s.until, start), s.window.error_rate * 100 if s.window.seen else None) for s in data.samples),
    )
    p95 = Series(new, tuple((_offset(s.until, start), s.window.quantile_ms(0.95)) for s in data.samples))
    levels: dict[str, list[Level]] = {"error_rate": [], "p95_ms": []}
    before = f"{data.previous_version} before the switch" if data.previous_version else "previous release"
    prev = data.previous if data.previous is not None and data.previous.seen else None
    baselines: dict[str, float | None] = {
        "error_rate": prev.error_rate * 100 if prev else None,
        "p95_ms": prev.quantile_ms(0.95) if prev else None,
    }
    if prev is None:  # the agent no longer has it (or never had): what the latest judgement compared with
        for metric, judged in _judged_baselines(data.samples).items():
            baselines[metric] = judged * 100 if metric == "error_rate" else judged
    for metric, value in baselines.items():
        if value is not None:
            levels[metric].append(Level(before, value, "baseline"))
    if data.spec is not None:
        for metric, rule in data.spec.rollback_if.items():
            if metric in levels:
                levels[metric].append(Level(f"rollback_if {metric} {rule}", _threshold(metric, rule), "threshold"))
        for metric, factor in data.spec.regression.items():
            base = baselines.get(metric)
            if metric in levels and base is not None:
                times = float(factor.rstrip("x").strip())
                floor = max(base, BASELINE_FLOOR * 100) if metric == "error_rate" else base
                levels[metric].append(Level(f"regression {metric} {factor} previous", times * floor, "threshold"))
    markers = [Marker(f"deploy {data.version or ''}".strip(), _offset(mon.switched_at, start), "deploy")]
    markers += [Marker(f"flag {f.get('flag', '?')}", _flag_at(f, start), "flag") for f in data.flags if "at" in f]
    breach = next((s for s in data.samples if s.verdict == "breach"), None)
    breached: set[str] = set()
    if breach is not None:
        markers.append(Marker(f"breach (interval {breach.seq + 1})", _offset(breach.until, start), "breach"))
        breached = {f["signal"] for f in breach.findings if f.get("breached")}
    error_point = p95_point = None
    if breach is not None:
        at = _offset(breach.until, start)
        if "error_rate" in breached or not breached.intersection({"p50_ms", "p95_ms", "p99_ms"}):
            error_point = (at, breach.window.error_rate * 100)
        q = breach.window.quantile_ms(0.95)
        if breached.intersection({"p50_ms", "p95_ms", "p99_ms"}) and q is not None:
            p95_point = (at, q)
    x_to = max([mon.seconds, *(_offset(s.until, start) for s in data.samples)])
    x_from = min([0.0, *(m.at for m in markers)])
    title = f"{data.service} in {data.environment}: monitoring {data.version or ''}".rstrip()
    panels = (
        Panel("Error rate (5xx and unanswered)", "%", (errors,), tuple(levels["error_rate"]), error_point),
        Panel("p95 latency", "ms", (p95,), tuple(levels["p95_ms"]), p95_point),
    )
    return Chart(title, panels, x_from, x_to, tuple(markers))


def _judged_baselines(stored: tuple[Sample, ...]) -> dict[str, float]:
    """The previous release's values the latest sample's regression findings compared with."""
    for sample in reversed(stored):
        found = {
            str(f["signal"]): float(f["baseline"])
            for f in sample.findings
            if f.get("signal") in ("error_rate", "p95_ms") and f.get("baseline") is not None
        }
        if found:
            return found
    return {}


def _flag_at(change: dict[str, Any], start: datetime) -> float:
    return _offset(datetime.fromisoformat(str(change["at"])), start)


def _previous_window(rt: Runtime, d: Any, env_kind: str, mon: Monitoring, seconds: float) -> Window | None:
    """The previous release's window before the switch, as the judgement reads it (local target)."""
    if env_kind != "local" or not d.previous_version or seconds <= 0:
        return None
    from conveyor.monitor.builtin import read_window

    since = mon.switched_at - timedelta(seconds=seconds)
    return read_window(rt.settings.home, d.service, d.environment, d.previous_version, since, mon.switched_at)


def chart_input(rt: Runtime, deployment_id: str) -> ChartInput | None:
    """Read what the chart of a deployment needs; None when it was not monitored."""
    with rt.db.read() as conn:
        d = store.get_deployment(conn, deployment_id)
        mon = monitor_samples.get(conn, deployment_id)
        if mon is None:
            return None
        stored = tuple(monitor_samples.samples(conn, deployment_id))
        service = service_store.get_service_by_id(conn, d.service_id)
        if mon.flags is not None:
            flags = list(mon.flags)
        else:
            flags = flag_changes(conn, d.service, d.environment, d.started_at or mon.started_at)
    flags = [f for f in flags if str(f.get("at", "")) <= mon.ends_at.isoformat()]
    try:
        env = rt.spec_of(service.config_text).environment(d.environment)
    except ConveyorError:  # the config changed since: draw without its thresholds
        env = None
    spec = env.monitor if env is not None else None
    seconds = sum(s.window.seconds for s in stored if s.seq >= mon.judge_from)
    previous = _previous_window(rt, d, env.target.kind if env is not None else "", mon, seconds)
    return ChartInput(
        d.service, d.environment, d.version, d.previous_version, mon, stored, spec, previous, tuple(flags)
    )


@router.get("/deployments/{deployment_id}/monitoring.svg")
def monitoring_svg(deployment_id: str, request: Request, session: SessionDep) -> Response:
    """The chart as SVG; a deployment that was not monitored gets an empty chart saying so."""
    rt = runtime(request)
    full_id = resolve_id(rt, deployment_id)
    data = chart_input(rt, full_id)
    if data is None:
        body = render(Chart(f"deployment {full_id}: not monitored", (), 0.0, 1.0))
    else:
        body = render(chart_for(data))
    return Response(body, media_type=SVG, headers={"cache-control": "no-store"})
