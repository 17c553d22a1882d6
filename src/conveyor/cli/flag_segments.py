"""conveyor flags segment ... and conveyor flags import unleash: segments (Unleash's shared
constraint sets) and an Unleash features export made into flags, clients of /api/v1/flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from conveyor.api.models_flags import ImportResult, Segment, SegmentDeleted
from conveyor.cli.client import Client, wire
from conveyor.cli.deploy import Json, Service
from conveyor.cli.output import Table, console, handles_errors, print_json
from conveyor.flags.text import describe_strategies, read_json

segment_app = typer.Typer(
    help="Segments: named sets of constraints that strategies share (by id, as in Unleash).", no_args_is_help=True
)
import_app = typer.Typer(help="Import flags from another system.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="segment name")]
Constraints = Annotated[
    str | None,
    typer.Option("--constraints", help='JSON list, or @FILE: [{"attribute": "country", "operator": "IN", ...}]'),
]
Description = Annotated[str | None, typer.Option("--description", "-d", help="what the segment is for")]


def _path(name: str) -> str:
    return "/flags/segments/" + quote(name, safe="")


def _constraints(text: str) -> Any:
    try:
        return read_json(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--constraints") from None


def _show(segment: Segment) -> None:
    rules = describe_strategies([{"constraints": [c.model_dump(mode="json") for c in segment.constraints]}])
    console.print(
        f"[bold]{segment.name}[/bold] (id {segment.id}, {segment.service}): {rules}; "
        f"used by {', '.join(segment.used_by) or 'no strategy'}",
        highlight=False,
    )
    if segment.description:
        console.print(f"  {segment.description}", highlight=False)


@segment_app.command("list")
@handles_errors
def segment_list(service: Service = None, json_out: Json = False) -> None:
    """Segments, with the strategies (FLAG@ENV) that name them."""
    rows = Client().get_as(list[Segment], "/flags/segments", service=service)
    if json_out:
        print_json(wire(rows))
        return
    table = Table("id", "name", "service", "constraints", "used by")
    for s in rows:
        table.add_row(str(s.id), s.name, s.service, str(len(s.constraints)), ", ".join(s.used_by) or "-")
    console.print(table)


@segment_app.command("show")
@handles_errors
def segment_show(name: Name, service: Service = None, json_out: Json = False) -> None:
    """One segment: its constraints and who uses it."""
    result = Client().get_as(Segment, _path(name), service=service)
    print_json(wire(result)) if json_out else _show(result)


@segment_app.command("create")
@handles_errors
def segment_create(
    name: Name,
    constraints: Constraints = None,
    description: Description = None,
    service: Service = None,
    json_out: Json = False,
) -> None:
    """Create a segment; name its id in a strategy's "segments" to use it."""
    body: dict[str, Any] = {"name": name, "service": service, "description": description}
    if constraints is not None:
        body["constraints"] = _constraints(constraints)
    result = Client().send_as(Segment, "POST", "/flags/segments", body)
    print_json(wire(result)) if json_out else _show(result)


@segment_app.command("update")
@handles_errors
def segment_update(
    name: Name,
    constraints: Constraints = None,
    new_name: Annotated[str | None, typer.Option("--name", help="rename it")] = None,
    description: Description = None,
    service: Service = None,
    json_out: Json = False,
) -> None:
    """Change a segment: every flag that names it serves by the new constraints at once."""
    body: dict[str, Any] = {}
    if constraints is not None:
        body["constraints"] = _constraints(constraints)
    if new_name is not None:
        body["name"] = new_name
    if description is not None:
        body["description"] = description
    result = Client().send_as(Segment, "PATCH", _path(name), body, service=service)
    print_json(wire(result)) if json_out else _show(result)


@segment_app.command("delete")
@handles_errors
def segment_delete(name: Name, service: Service = None, json_out: Json = False) -> None:
    """Delete a segment that no strategy names."""
    result = Client().send_as(SegmentDeleted, "DELETE", _path(name), service=service)
    if json_out:
        print_json(wire(result))
    else:
        console.print(f"segment {result.name} deleted", highlight=False)


@import_app.command("unleash")
@handles_errors
def import_unleash(
    file: Annotated[Path, typer.Argument(help="JSON of Unleash's GET /api/client/features (features, segments)")],
    env: Annotated[str, typer.Option("--env", "-e", help="the environment to import into, e.g. production")],
    service: Service = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only show what would change")] = False,
    json_out: Json = False,
) -> None:
    """Make an Unleash features export the flags and segments of a service environment."""
    try:
        export = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{file}: {exc}", param_hint="FILE") from None
    body = {"environment": env, "service": service, "export": export, "dry_run": dry_run}
    result = Client().send_as(ImportResult, "POST", "/flags/import/unleash", body)
    if json_out:
        print_json(wire(result))
        return
    for c in result.changes:
        fields = f" ({', '.join(c.fields)})" if c.fields and c.action == "update" else ""
        console.print(f"{c.action:9} {c.kind:7} {c.name}{fields}", highlight=False, soft_wrap=True)
        for note in c.notes:
            console.print(f"          note: {note}", highlight=False, soft_wrap=True)
    counts = {a: sum(1 for c in result.changes if c.action == a) for a in ("create", "update", "unchanged")}
    done = "nothing was changed (--dry-run)" if result.dry_run else "applied"
    console.print(
        f"{result.service}/{result.environment}: {counts['create']} to create, {counts['update']} to update, "
        f"{counts['unchanged']} unchanged; {done}",
        highlight=False,
        soft_wrap=True,
    )
