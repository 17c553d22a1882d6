"""why, approve, checklist, verify, checks report: the gates from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.api.models import CheckReported, DeploymentDetail, Gate, Verification, Why
from conveyor.cli.client import Client, wire
from conveyor.cli.deploy import Json, Service, _finish
from conveyor.cli.output import Table, console, handles_errors, print_json

checks_app = typer.Typer(help="CI checks on commits.", no_args_is_help=True)


def _gate_table(gates: list[Gate]) -> Table:
    table = Table("gate", "state", "reason")
    for g in gates:
        table.add_row(g.gate, "[green]passed[/green]" if g.passed else "[red]blocked[/red]", g.reason)
    return table


@handles_errors
def why(
    environment: Annotated[str, typer.Argument(help="environment")],
    ref: Annotated[str, typer.Option("--ref", help="branch, tag or commit")],
    service: Service = None,
    as_user: Annotated[str | None, typer.Option("--as", help="evaluate for this user")] = None,
    at: Annotated[str | None, typer.Option("--at", help="evaluate at this ISO-8601 instant (with an offset)")] = None,
    json_out: Json = False,
) -> None:
    """Evaluate every gate for deploying REF to ENVIRONMENT, without deploying. Exit 0 deployable, 1 blocked."""
    params = {"environment": environment, "ref": ref, "service": service, "as_user": as_user, "at": at}
    result = Client().get_as(Why, "/why", **params)
    if json_out:
        print_json(wire(result))
    else:
        verdict = "[green]deployable[/green]" if result.deployable else "[red]blocked[/red]"
        when = f" at {result.at}" if at else ""
        console.print(
            f"{result.service} {ref} ({result.sha[:12]}) to {environment} as {result.as_}{when}: {verdict}",
            highlight=False,
        )
        console.print(_gate_table(result.gates))
    if not result.deployable:
        raise typer.Exit(1)


@handles_errors
def approve(
    deployment_id: Annotated[str, typer.Argument(help="deployment id (or its first 6+ characters)")],
    comment: Annotated[str | None, typer.Option(help="a note kept with the approval")] = None,
    json_out: Json = False,
) -> None:
    """Approve a pending deployment."""
    path = f"/deployments/{deployment_id}/approvals"
    detail = Client().send_as(DeploymentDetail, "POST", path, {"comment": comment})
    _finish(detail, json_out, waited=False)


@handles_errors
def checklist(
    deployment_id: Annotated[str, typer.Argument(help="deployment id (or its first 6+ characters)")],
    tick: Annotated[list[str], typer.Option("--tick", help="item to tick (repeatable)")],
    json_out: Json = False,
) -> None:
    """Tick items of a pending deployment's checklist."""
    client = Client()
    detail: DeploymentDetail | None = None
    for item in tick:
        detail = client.send_as(DeploymentDetail, "POST", f"/deployments/{deployment_id}/checklist", {"item": item})
    if json_out:
        print_json(wire(detail) if detail is not None else {})
        return
    gate = next((g for g in detail.gates if g.gate == "checklist"), None) if detail else None
    console.print(f"ticked {', '.join(tick)}" + (f"; {gate.reason}" if gate else ""), highlight=False)


@handles_errors
def verify(
    environment: Annotated[str, typer.Argument(help="where you verified it, e.g. staging")],
    ref: Annotated[str, typer.Option("--ref", help="branch, tag or commit")],
    service: Service = None,
    json_out: Json = False,
) -> None:
    """Record that you verified REF in ENVIRONMENT (the staging sign-off)."""
    body = {"environment": environment, "ref": ref, "service": service}
    result = Client().send_as(Verification, "POST", "/verifications", body)
    if json_out:
        print_json(wire(result))
    else:
        console.print(f"{result.sha[:12]} verified in {environment} by {result.verified_by}", highlight=False)


@checks_app.command("report")
@handles_errors
def checks_report(
    sha: Annotated[str, typer.Option("--sha", help="the commit")],
    name: Annotated[str, typer.Option("--name", help="check name, e.g. tests")],
    state: Annotated[str, typer.Option("--state", help="success, failure or pending")],
    url: Annotated[str | None, typer.Option("--url", help="link to the CI run")] = None,
    json_out: Json = False,
) -> None:
    """Report a CI check's state on a commit (from CircleCI, GitHub Actions, ...)."""
    result = Client().send_as(CheckReported, "POST", "/checks", {"sha": sha, "name": name, "state": state, "url": url})
    if json_out:
        print_json(wire(result))
    else:
        console.print(f"{name} {state} on {sha[:12]}", highlight=False)
