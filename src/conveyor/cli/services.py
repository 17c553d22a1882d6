"""services add / list."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from conveyor.cli.client import Client
from conveyor.cli.output import console, handles_errors, print_json

app = typer.Typer(help="Services Conveyor deploys.", no_args_is_help=True)
Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]


@app.command("add")
@handles_errors
def add(
    source: Annotated[str, typer.Argument(help="path of a git checkout, or a clone URL")],
    json_out: Json = False,
) -> None:
    """Add a service (or refresh its registered conveyor.yml). Its followed branches deploy."""
    result = Client().post("/services", {"source": source})
    if json_out:
        print_json(result)
        return
    verb = "added" if result["created"] else "updated"
    console.print(
        f"service [bold]{result['service']}[/bold] {verb}: environments {', '.join(result['environments'])}",
        highlight=False,
    )
    for d in result["deployments"]:
        console.print(f"  deploying {d['ref']} ({d['sha'][:12]}) to {d['environment']}: {d['id'][:8]}", highlight=False)


@app.command("list")
@handles_errors
def list_services(json_out: Json = False) -> None:
    """List services."""
    rows = Client().get("/services")
    if json_out:
        print_json(rows)
        return
    table = Table("service", "source", "environments")
    for r in rows:
        table.add_row(r["service"], r["source"], ", ".join(r["environments"]))
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
    run = handles_errors(
        lambda: Client().post(f"/environments/{environment}/maintenance", {"on": state == "on", "service": service})
    )
    result = run()
    if json_out:
        print_json(result)
    else:
        word = "on" if result["maintenance"] else "off"
        console.print(f"maintenance mode {word} for {result['service']} {environment}", highlight=False)
