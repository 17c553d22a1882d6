"""freeze add / list / lift and calendar: the deploy calendar from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.api.models import Calendar, Freeze, ServiceFreeze
from conveyor.cli.client import Client, wire
from conveyor.cli.deploy import Json, Service
from conveyor.cli.output import Table, console, handles_errors, print_json

freeze_app = typer.Typer(help="One-off deploy freezes.", no_args_is_help=True)


@freeze_app.command("add")
@handles_errors
def freeze_add(
    environment: Annotated[str, typer.Argument(help="environment to freeze")],
    reason: Annotated[str, typer.Option("--reason", help="why (shown in every refusal)")],
    start: Annotated[str | None, typer.Option("--from", help="ISO-8601 start with an offset (default: now)")] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="ISO-8601 end with an offset (default: until lifted)")
    ] = None,
    service: Service = None,
    json_out: Json = False,
) -> None:
    """Freeze ENVIRONMENT: no deploys from --from until --until."""
    body = {"environment": environment, "service": service, "from": start, "until": until, "reason": reason}
    result = Client().send_as(ServiceFreeze, "POST", "/freezes", body)
    if json_out:
        print_json(wire(result))
    else:
        end = result.until or "lifted"
        console.print(
            f"freeze {result.id}: {environment} closed from {result.from_} until {end}: {reason}", highlight=False
        )


@freeze_app.command("list")
@handles_errors
def freeze_list(
    environment: Annotated[str, typer.Argument(help="environment")], service: Service = None, json_out: Json = False
) -> None:
    """Freezes of ENVIRONMENT that are not lifted."""
    rows = Client().get_as(list[Freeze], "/freezes", environment=environment, service=service)
    if json_out:
        print_json(wire(rows))
        return
    table = Table("id", "from", "until", "reason", "by")
    for f in rows:
        table.add_row(str(f.id), f.from_, f.until or "lifted", f.reason, f.created_by)
    console.print(table)


@freeze_app.command("lift")
@handles_errors
def freeze_lift(freeze_id: Annotated[int, typer.Argument(help="freeze id")], json_out: Json = False) -> None:
    """Lift a freeze."""
    result = Client().send_as(Freeze, "DELETE", f"/freezes/{freeze_id}")
    if json_out:
        print_json(wire(result))
    else:
        console.print(f"freeze {freeze_id} lifted", highlight=False)


@handles_errors
def calendar(
    environment: Annotated[str, typer.Argument(help="environment")],
    days: Annotated[int, typer.Option(help="how many days ahead")] = 7,
    service: Service = None,
    json_out: Json = False,
) -> None:
    """The open windows and closures of ENVIRONMENT for the coming days."""
    result = Client().get_as(Calendar, "/calendar", environment=environment, service=service, days=days)
    if json_out:
        print_json(wire(result))
        return
    if not result.spans:
        console.print(f"{environment} has no schedule: always open", highlight=False)
        return
    table = Table("from", "until", "", "why", title=f"{environment} ({result.timezone})")
    for s in result.spans:
        table.add_row(
            s.start[:16].replace("T", " "),
            s.end[:16].replace("T", " "),
            "[green]open[/green]" if s.open else "[red]closed[/red]",
            s.reason,
        )
    console.print(table)
