"""services add / list."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from conveyor.api.models import MaintenanceState, Registration, ServiceSummary
from conveyor.cli.client import Client, wire
from conveyor.cli.output import console, err, handles_errors, print_json
from conveyor.errors import ConveyorError

app = typer.Typer(help="Services Conveyor deploys.", no_args_is_help=True)
Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]


@app.command("add")
@handles_errors
def add(
    source: Annotated[str, typer.Argument(help="clone URL, or path of a git checkout")],
    github_repository: Annotated[
        str | None, typer.Option("--github-repository", help="owner/name its GitHub reviews and checks must come from")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="apply a re-registration's changes without asking")] = False,
    json_out: Json = False,
) -> None:
    """Add a service, or re-register it. A re-registration that changes anything shows the diff and
    asks before applying it (needs an admin). Its followed branches deploy."""
    if "://" not in source and not source.startswith("-") and Path(source).expanduser().exists():
        source = str(Path(source).expanduser().resolve())  # the server needs an absolute path
    client = Client()
    body: dict[str, object] = {"source": source, "github_repository": github_repository}
    preview = client.send_as(Registration, "POST", "/services", {**body, "dry_run": True})
    if preview.changes and not preview.created:
        err.print(f"re-registering {preview.service} changes: {', '.join(preview.changes)}", highlight=False)
        err.print(Text(preview.diff), soft_wrap=True)
        if not yes:
            if not sys.stdin.isatty():
                raise ConveyorError("not applied", fix="review the diff above, then run again with --yes")
            if not typer.confirm("Apply these changes?", err=True):
                raise ConveyorError("not applied: you declined")
    result = client.send_as(Registration, "POST", "/services", {**body, "confirm_diff": preview.confirm})
    if json_out:
        print_json(wire(result))
        return
    verb = "added" if result.created else "updated"
    console.print(
        f"service [bold]{result.service}[/bold] {verb}: environments {', '.join(result.environments)}",
        highlight=False,
    )
    for d in result.deployments:
        console.print(f"  deploying {d.ref} ({d.sha[:12]}) to {d.environment}: {d.id[:8]}", highlight=False)


@app.command("list")
@handles_errors
def list_services(json_out: Json = False) -> None:
    """List services."""
    rows = Client().get_as(list[ServiceSummary], "/services")
    if json_out:
        print_json(wire(rows))
        return
    table = Table("service", "source", "environments")
    for r in rows:
        table.add_row(r.service, r.source, ", ".join(r.environments))
    console.print(table)


def maintenance(
    environment: Annotated[str, typer.Argument(help="environment")],
    state: Annotated[str, typer.Argument(help="on or off")],
    service: Annotated[str | None, typer.Option("--service", "-s", help="service name")] = None,
    json_out: Json = False,
) -> None:
    """Put an environment in maintenance mode (503 with Retry-After for every request), or take it out."""
    if state not in ("on", "off"):
        raise typer.BadParameter(f"{state!r}: say on or off", param_hint="STATE")
    path, body = f"/environments/{environment}/maintenance", {"on": state == "on", "service": service}
    run = handles_errors(lambda: Client().send_as(MaintenanceState, "POST", path, body))
    result = run()
    if json_out:
        print_json(wire(result))
    else:
        word = "on" if result.maintenance else "off"
        console.print(f"maintenance mode {word} for {result.service} {environment}", highlight=False)
