"""hotfix start / hotfix status, allow-missing, revert: the hotfix and revert flows (docs/hotfix.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.api.models_hotfix import HotfixStarted, MergeBackItem, MissingOverride, RevertCreated
from conveyor.cli.client import Client, wire
from conveyor.cli.output import Table, console, handles_errors, print_json

app = typer.Typer(help="Hotfixes: a branch from the production release, and its merge-back.", no_args_is_help=True)
Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
Service = Annotated[str | None, typer.Option("--service", "-s", help="service name (default: the only one)")]


@app.command("start")
@handles_errors
def start(
    environment: Annotated[str, typer.Argument(help="environment whose serving release the fix is based on")],
    name: Annotated[str, typer.Argument(help="the branch is hotfix/NAME")],
    service: Service = None,
    json_out: Json = False,
) -> None:
    """Create hotfix/NAME from the release serving in ENVIRONMENT, push it, and print the next steps."""
    body = {"environment": environment, "name": name, "service": service}
    started = Client().send_as(HotfixStarted, "POST", "/hotfixes", body)
    if json_out:
        print_json(wire(started))
        return
    made = "created" if started.created else "already there"
    pushed = ", pushed to origin" if started.pushed else ""
    console.print(
        f"{started.branch} {made} at {started.base_version} ({started.base_sha[:12]}), "
        f"which serves in {started.environment}{pushed}",
        highlight=False,
    )
    console.print("next:", highlight=False)
    for number, step in enumerate(started.next_steps, 1):
        console.print(f"  {number}. {step}", highlight=False)


def pending_lines(items: list[MergeBackItem]) -> list[str]:
    return [f"{m.service}: {m.reason} (hotfix {m.version or m.sha[:12]})" for m in items]


def print_pending(client: Client, service: str | None) -> None:
    """Print pending merge-backs under another listing (``conveyor status``); nothing when none."""
    items = client.get_as(list[MergeBackItem], "/merge-backs", service=service)
    for line in pending_lines(items):
        console.print(f"[yellow]{line}[/yellow]", highlight=False)


@app.command("status")
@handles_errors
def status(
    service: Service = None,
    all_: Annotated[bool, typer.Option("--all", help="every merge-back, not only the pending ones")] = False,
    json_out: Json = False,
) -> None:
    """Hotfix merge-backs: the pending ones (merge-back due), or with --all every one."""
    items = Client().get_as(list[MergeBackItem], "/merge-backs", service=service, all=all_ or None)
    if json_out:
        print_json(wire(items))
        return
    if not items:
        console.print("no merge-back is due" if not all_ else "no hotfix has been merged back yet", highlight=False)
        return
    table = Table("service", "branch", "version", "state", "reason")
    for m in items:
        table.add_row(m.service, m.branch, m.version or m.sha[:12], m.state, m.reason)
    console.print(table)


@handles_errors
def allow_missing(
    environment: Annotated[str, typer.Argument(help="environment (production refuses missing commits)")],
    ref: Annotated[str, typer.Option("--ref", help="branch, tag or commit to deploy anyway")],
    reason: Annotated[str, typer.Option("--reason", help="why dropping the missing commits is right")],
    service: Service = None,
    json_out: Json = False,
) -> None:
    """Let REF deploy to ENVIRONMENT although it lacks commits serving there (a release manager; audited)."""
    body = {"environment": environment, "ref": ref, "reason": reason, "service": service}
    result = Client().send_as(MissingOverride, "POST", "/missing-commits/overrides", body)
    if json_out:
        print_json(wire(result))
        return
    console.print(
        f"{result.sha[:12]} may deploy to {environment} without {len(result.missing)} commit(s) serving there; "
        f"now run: conveyor deploy {environment} --ref {ref}",
        highlight=False,
    )


@handles_errors
def revert(
    environment: Annotated[str, typer.Argument(help="environment whose latest change to revert")],
    to: Annotated[str | None, typer.Option("--to", help="revert everything after this version")] = None,
    service: Service = None,
    json_out: Json = False,
) -> None:
    """Make the revert commit on ENVIRONMENT's branch; the normal flow deploys it, staging first."""
    result = Client().send_as(
        RevertCreated, "POST", "/reverts", {"environment": environment, "to": to, "service": service}
    )
    if json_out:
        print_json(wire(result))
        return
    console.print(f"reverted on {result.branch}, from {result.from_} back to {result.to}:", highlight=False)
    for line in result.reverted:
        console.print(f"  - {line}", highlight=False)
    for line in result.plan:
        console.print(line, highlight=False)
