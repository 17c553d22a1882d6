"""monitoring show / accept / rollback: the window after a deploy, and a person's early end."""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.api.models import DeploymentDetail
from conveyor.api.models_monitoring import FindingView, MonitoringView
from conveyor.cli.client import Client, wire
from conveyor.cli.output import console, handles_errors, print_json

app = typer.Typer(help="Monitoring after a deploy: its evidence, accept now, roll back now.", no_args_is_help=True)
Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
Reason = Annotated[str, typer.Option("--reason", help="why (recorded in the audit log)")]
DeploymentId = Annotated[str, typer.Argument(help="deployment id (or an unambiguous prefix of 6+ characters)")]


def value_text(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "ms":
        return f"{value:.0f} ms"
    return f"{value:g}"


def finding_line(f: FindingView) -> str:
    mark = "BREACH " if f.breached else ""
    baseline = f", previous release {value_text(f.baseline, f.unit)}" if f.baseline is not None else ""
    rule = f" against {f.threshold}" if f.threshold else ""
    return f"{mark}{f.signal} {value_text(f.value, f.unit)}{rule}{baseline}: {f.note}"


def print_monitoring(view: MonitoringView) -> None:
    mon = view.monitoring
    if mon is None:
        console.print(f"{view.deployment_id} ({view.state}) was not monitored", highlight=False)
        return
    console.print(
        f"{view.deployment_id}: {view.state}; window {mon.started_at} to {mon.ends_at}, "
        f"a sample every {mon.interval_seconds:g}s, on_breach {mon.on_breach}",
        highlight=False,
    )
    if mon.outcome == "not_enough_traffic":
        console.print("[bold yellow]NOT ENOUGH TRAFFIC TO JUDGE[/bold yellow]: it was not checked", highlight=False)
    if mon.breach is not None:
        console.print(f"[bold red]breach[/bold red] at {mon.breach.at} (sample {mon.breach.seq}):", highlight=False)
        for f in mon.breach.findings:
            console.print(f"  {finding_line(f)}", highlight=False)
    for change in mon.flags:
        console.print(
            f"  flag {change['flag']}: {change['action']} by {change['actor']} at {change['at']}", highlight=False
        )
    if mon.killed_flags:
        console.print(f"  killed by Conveyor: {', '.join(mon.killed_flags)}", highlight=False)
    if mon.decided_by:
        console.print(f"{mon.decision} by {mon.decided_by}: {mon.decision_reason}", highlight=False)
    if view.samples:
        last = view.samples[-1]
        console.print(f"after sample {last.seq} ({last.verdict}):", highlight=False)
        for f in last.findings:
            console.print(f"  {finding_line(f)}", highlight=False)


@app.command("show")
@handles_errors
def show(deployment_id: DeploymentId, json_out: Json = False) -> None:
    """The monitoring window of a deployment: its verdict, the numbers, any breach and flag changes."""
    view = Client().get_as(MonitoringView, f"/deployments/{deployment_id}/monitoring")
    if json_out:
        print_json(wire(view))
        return
    print_monitoring(view)


def _decide(deployment_id: str, what: str, reason: str, json_out: bool) -> None:
    d = Client().send_as(
        DeploymentDetail, "POST", f"/deployments/{deployment_id}/monitoring/{what}", {"reason": reason}
    )
    if json_out:
        print_json(wire(d))
        return
    console.print(f"{d.id}: {d.state}" + (f" ({d.reason})" if d.reason else ""), highlight=False)


@app.command("accept")
@handles_errors
def accept(deployment_id: DeploymentId, reason: Reason, json_out: Json = False) -> None:
    """End monitoring now and accept the release (release managers and admins)."""
    _decide(deployment_id, "accept", reason, json_out)


@app.command("rollback")
@handles_errors
def rollback(deployment_id: DeploymentId, reason: Reason, json_out: Json = False) -> None:
    """End monitoring now and put the previous release back (release managers and admins)."""
    _decide(deployment_id, "rollback", reason, json_out)
