"""``conveyor watch ID``: a deployment's monitoring window, live in the terminal (Rich): its state,
the time left in the window, per interval the new release's error rate and p95 next to the
previous release's (what the judgement compared with), the thresholds, sparklines, and the breach
when it comes. It polls the API (GET /deployments/{id} and .../monitoring) and ends with the
deployment: exit 0 when it succeeded, 1 when it was rolled back, failed or was cancelled.
``--json`` prints one JSON line per interval as it is sampled, and one line at the end."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from conveyor.api.models import DeploymentDetail
from conveyor.api.models_monitoring import FindingView, MonitoringView, SampleView
from conveyor.cli.client import Client
from conveyor.cli.output import Table, console, err, handles_errors
from conveyor.domain.monitoring import Window

FINISHED = {"succeeded", "failed", "rolled_back", "cancelled"}
BLOCKS = "▁▂▃▄▅▆▇█"
ROWS = 12  # intervals shown in the table (the latest ones)
SIGNALS = ("error_rate", "p95_ms")


def sparkline(values: Sequence[float | None], top: float | None = None) -> str:
    """One block character per value, scaled to ``top`` (default: the largest); a gap is a space."""
    known = [v for v in values if v is not None]
    peak = top if top is not None else max(known, default=0.0)
    if peak <= 0:
        return "".join(" " if v is None else BLOCKS[0] for v in values)
    return "".join(
        " " if v is None else BLOCKS[min(len(BLOCKS) - 1, int(max(v, 0.0) / peak * (len(BLOCKS) - 1) + 0.5))]
        for v in values
    )


def window_of(s: SampleView) -> Window:
    return Window(requests=s.requests, errors=s.errors, failed=s.failed, latency_buckets=tuple(s.latency_buckets))


def p95(s: SampleView) -> float | None:
    return window_of(s).quantile_ms(0.95)


def error_rate(s: SampleView) -> float | None:
    w = window_of(s)
    return w.error_rate if w.seen else None


def previous(samples: Sequence[SampleView]) -> dict[str, float]:
    """The previous release's error rate and p95 the latest judgement compared with (regression rules)."""
    for s in reversed(samples):
        found = {f.signal: f.baseline for f in s.findings if f.signal in SIGNALS and f.baseline is not None}
        if found:
            return {k: v for k, v in found.items() if v is not None}
    return {}


def thresholds(samples: Sequence[SampleView]) -> dict[str, list[str]]:
    """The rules each signal is judged against, as written ("> 2%", "2x previous")."""
    out: dict[str, list[str]] = {}
    for s in reversed(samples):
        for f in s.findings:
            if f.signal in SIGNALS and f.threshold:
                out.setdefault(f.signal, [])
                if f.threshold not in out[f.signal]:
                    out[f.signal].append(f.threshold)
        if out:
            return out
    return out


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def left(ends_at: str, now: datetime) -> str:
    seconds = max(0, int((datetime.fromisoformat(ends_at) - now).total_seconds()))
    return f"{seconds // 60}:{seconds % 60:02d}"


def interval_json(deployment_id: str, s: SampleView, before: dict[str, float]) -> dict[str, Any]:
    return {
        "type": "interval",
        "deployment_id": deployment_id,
        "seq": s.seq,
        "since": s.since,
        "until": s.until,
        "requests": s.requests,
        "errors": s.errors,
        "failed": s.failed,
        "error_rate": error_rate(s),
        "p95_ms": p95(s),
        "verdict": s.verdict,
        "previous": {"error_rate": before.get("error_rate"), "p95_ms": before.get("p95_ms")},
        "findings": [f.model_dump(mode="json") for f in s.findings],
    }


def end_json(d: DeploymentDetail, view: MonitoringView) -> dict[str, Any]:
    mon = view.monitoring
    return {
        "type": "end",
        "deployment_id": d.id,
        "state": d.state.value,
        "reason": d.reason,
        "outcome": mon.outcome if mon else None,
        "breach": mon.breach.model_dump(mode="json") if mon and mon.breach else None,
    }


def breach_lines(findings: Sequence[FindingView]) -> list[Text]:
    return [Text(f"  {f.signal}: {f.note}", style="red") for f in findings if f.breached]


def screen(d: DeploymentDetail, view: MonitoringView, now: datetime) -> RenderableType:
    """What the terminal shows for one poll."""
    head = Text.assemble(
        (f"{d.service} {d.environment} ", "bold"),
        (f"{d.version or d.sha[:12]}", "bold cyan"),
        f" (previous {d.previous_version or 'none'})  ",
        (d.state.value, "bold red" if d.state.value in ("rolled_back", "failed") else "bold"),
    )
    mon = view.monitoring
    if mon is None:
        note = "not monitored" if d.state.value in FINISHED else "waiting for monitoring to start"
        return Group(head, Text(note, style="dim"))
    samples = view.samples
    total = max(1, int(mon.for_seconds // mon.interval_seconds + (1 if mon.for_seconds % mon.interval_seconds else 0)))
    timing = (
        f"window {left(mon.ends_at, now)} left"
        if d.state.value == "monitoring"
        else f"window ended: {mon.outcome or d.state.value}"
    )
    status = Text(f"{timing}; {len(samples)} of {total} intervals of {mon.interval_seconds:g}s sampled")
    before = previous(samples)
    rules = thresholds(samples)
    rates = [error_rate(s) for s in samples]
    p95s = [p95(s) for s in samples]
    lines = Text.assemble(
        "error rate ",
        (sparkline(rates), "cyan"),
        f"  now {pct(rates[-1] if rates else None)}, previous {pct(before.get('error_rate'))}, "
        f"limits {', '.join(rules.get('error_rate', [])) or 'none'}\n",
        "p95        ",
        (sparkline(p95s), "cyan"),
        f"  now {ms(p95s[-1] if p95s else None)}, previous {ms(before.get('p95_ms'))}, "
        f"limits {', '.join(rules.get('p95_ms', [])) or 'none'}",
    )
    table = Table("#", "until (UTC)", "requests", "error rate", "prev err", "p95", "prev p95", "verdict")
    for s, rate, q in list(zip(samples, rates, p95s, strict=True))[-ROWS:]:
        style = "red" if s.verdict == "breach" else "yellow" if s.verdict == "not_enough_traffic" else ""
        table.add_row(
            str(s.seq + 1),
            s.until[11:19],
            str(s.requests + s.failed),
            pct(rate),
            pct(before.get("error_rate")),
            ms(q),
            ms(before.get("p95_ms")),
            Text(s.verdict, style=style),
        )
    parts: list[RenderableType] = [head, status, lines, table]
    if mon.breach is not None:
        parts.append(Text(f"BREACH at interval {mon.breach.seq + 1} ({mon.breach.at[11:19]}):", style="bold red"))
        parts.extend(breach_lines(mon.breach.findings))
        for change in mon.breach.flags:
            parts.append(
                Text(f"  flag {change.get('flag')} {change.get('action')} by {change.get('actor')} during the window")
            )
    return Group(*parts)


Json = Annotated[bool, typer.Option("--json", help="one JSON line per interval as it is sampled, and one at the end")]
Poll = Annotated[float, typer.Option("--poll", min=0.1, help="seconds between two looks at the server")]


@handles_errors
def watch(
    deployment_id: Annotated[str, typer.Argument(help="deployment id (or an unambiguous prefix of 6+ characters)")],
    json_out: Json = False,
    poll: Poll = 1.0,
) -> None:
    """Follow a deployment's monitoring live: error rate and p95 per interval, new against previous,
    the thresholds, the breach. Exits when the deployment ends: 0 succeeded, 1 otherwise."""
    client = Client()

    def look() -> tuple[DeploymentDetail, MonitoringView]:
        d = client.get_as(DeploymentDetail, f"/deployments/{deployment_id}")
        return d, client.get_as(MonitoringView, f"/deployments/{d.id}/monitoring")

    d, view = look()
    if json_out:
        printed = -1
        while True:
            before = previous(view.samples)
            for s in view.samples:
                if s.seq > printed:
                    sys.stdout.write(json.dumps(interval_json(d.id, s, before)) + "\n")
                    printed = s.seq
            sys.stdout.flush()
            if d.state.value in FINISHED:
                sys.stdout.write(json.dumps(end_json(d, view)) + "\n")
                break
            time.sleep(poll)
            d, view = look()
    else:
        with Live(screen(d, view, datetime.now(UTC)), console=console, auto_refresh=False) as live:
            while d.state.value not in FINISHED:
                time.sleep(poll)
                d, view = look()
                live.update(screen(d, view, datetime.now(UTC)), refresh=True)
    if d.state.value != "succeeded":
        err.print(f"{d.id}: {d.state.value}" + (f" ({d.reason})" if d.reason else ""), highlight=False, soft_wrap=True)
        raise typer.Exit(1)
