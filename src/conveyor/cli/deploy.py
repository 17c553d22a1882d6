"""deploy, rollback, cancel, status, history, logs: clients of the REST API."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from conveyor.api.models import Deployment, DeploymentDetail, EnvironmentStatus
from conveyor.cli.client import Client, wire
from conveyor.cli.hotfix import print_pending
from conveyor.cli.output import Table, console, handles_errors, print_json
from conveyor.cli.watch import wait_for

Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
Service = Annotated[str | None, typer.Option("--service", "-s", help="service name (default: the only one)")]
Wait = Annotated[bool, typer.Option("--wait", help="follow it to the end; exit 0 only on success")]


def _finish(detail: DeploymentDetail, json_out: bool, waited: bool) -> None:
    if json_out:
        print_json(wire(detail))
    else:
        version = detail.version or detail.sha[:12]
        console.print(
            f"deployment [bold]{detail.id[:8]}[/bold] {detail.kind.value} of {detail.service} "
            f"{version} to {detail.environment}: [bold]{detail.state.value}[/bold]",
            highlight=False,
        )
        if detail.reason:
            console.print(f"  {detail.reason}", highlight=False)
    if waited and detail.state != "succeeded":
        raise typer.Exit(1)


@handles_errors
def deploy(
    environment: Annotated[str, typer.Argument(help="environment to deploy to")],
    ref: Annotated[str, typer.Option("--ref", help="branch, tag or commit to deploy")],
    service: Service = None,
    notes: Annotated[str | None, typer.Option(help="deployment notes")] = None,
    ticket: Annotated[str | None, typer.Option(help="ticket key, e.g. PROJ-123")] = None,
    emergency: Annotated[
        bool, typer.Option("--emergency", help="bypass the schedule (needs --reason and a manager's approval)")
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="why this is an emergency")] = None,
    when_open: Annotated[
        bool, typer.Option("--when-open", help="outside the schedule: wait for its next opening")
    ] = False,
    maintenance: Annotated[
        bool, typer.Option("--maintenance", help="maintenance mode on during the migrate step (local targets)")
    ] = False,
    wait: Wait = False,
    json_out: Json = False,
) -> None:
    """Deploy REF to ENVIRONMENT."""
    client = Client()
    body = {
        "environment": environment,
        "ref": ref,
        "service": service,
        "notes": notes,
        "ticket": ticket,
        "emergency": emergency,
        "reason": reason,
        "when_open": when_open,
        "maintenance": maintenance,
    }
    detail = client.send_as(DeploymentDetail, "POST", "/deployments", body)
    if wait:
        detail = wait_for(client, detail.id, show=not json_out)
    _finish(detail, json_out, wait)


@handles_errors
def rollback(
    environment: Annotated[str, typer.Argument(help="environment to roll back")],
    to: Annotated[str | None, typer.Option("--to", help="version to go back to (default: the previous)")] = None,
    service: Service = None,
    with_database: Annotated[
        bool,
        typer.Option("--with-database", help="take the database back too (maintenance on, migrate.down or restore)"),
    ] = False,
    override_schema: Annotated[
        bool,
        typer.Option("--override-schema", help="roll back over a destructive migration anyway (release managers)"),
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="why (required with --override-schema)")] = None,
    wait: Wait = False,
    json_out: Json = False,
) -> None:
    """Deploy an earlier release of ENVIRONMENT again."""
    client = Client()
    body = {
        "environment": environment,
        "service": service,
        "to": to,
        "with_database": with_database,
        "override_schema": override_schema,
        "reason": reason,
    }
    detail = client.send_as(DeploymentDetail, "POST", "/rollbacks", body)
    if wait:
        detail = wait_for(client, detail.id, show=not json_out)
    _finish(detail, json_out, wait)


@handles_errors
def migrate(
    environment: Annotated[str, typer.Argument(help="environment whose database to migrate")],
    ref: Annotated[
        str | None, typer.Option("--ref", help="whose migration to run (default: the release serving there)")
    ] = None,
    service: Service = None,
    maintenance: Annotated[
        bool, typer.Option("--maintenance", help="maintenance mode on during the migrate step (local targets)")
    ] = False,
    wait: Wait = False,
    json_out: Json = False,
) -> None:
    """Run the migration alone in ENVIRONMENT; the serving release stays as it is."""
    client = Client()
    body = {"service": service, "ref": ref, "maintenance": maintenance}
    detail = client.send_as(DeploymentDetail, "POST", f"/environments/{quote(environment, safe='')}/migrate", body)
    if wait:
        detail = wait_for(client, detail.id, show=not json_out)
    _finish(detail, json_out, wait)


@handles_errors
def cancel(
    deployment_id: Annotated[str, typer.Argument(help="deployment id (or its first 6+ characters)")],
    json_out: Json = False,
) -> None:
    """Cancel a deployment that has not finished."""
    detail = Client().send_as(DeploymentDetail, "POST", f"/deployments/{deployment_id}/cancel")
    _finish(detail, json_out, waited=False)


@handles_errors
def status(
    environment: Annotated[str | None, typer.Argument(help="one environment (default: all)")] = None,
    service: Service = None,
    json_out: Json = False,
) -> None:
    """What each environment runs, and its latest deployment."""
    client = Client()
    rows = client.get_as(list[EnvironmentStatus], "/status", service=service, environment=environment)
    if json_out:
        print_json(wire(rows))
        return
    table = Table("service", "environment", "serving", "latest deployment", "state", "by")
    for r in rows:
        cur, latest = r.current, r.latest
        table.add_row(
            r.service,
            r.environment,
            cur.version if cur else "-",
            latest.id[:8] if latest else "-",
            latest.state.value if latest else "-",
            latest.actor if latest else "-",
        )
    console.print(table)
    print_pending(client, service)  # hotfixes not merged back yet (docs/hotfix.md)


@handles_errors
def history(
    environment: Annotated[str | None, typer.Argument(help="one environment (default: all)")] = None,
    service: Service = None,
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 20,
    json_out: Json = False,
) -> None:
    """Deployments, newest first."""
    rows = Client().get_as(list[Deployment], "/deployments", service=service, environment=environment, limit=limit)
    if json_out:
        print_json(wire(rows))
        return
    table = Table("id", "service", "environment", "kind", "version", "state", "by", "requested")
    for d in rows:
        table.add_row(
            d.id[:8],
            d.service,
            d.environment,
            d.kind.value,
            d.version or d.sha[:12],
            d.state.value,
            d.actor,
            d.created_at[:19],
        )
    console.print(table)
