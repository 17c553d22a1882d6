"""audit: list the log and verify its hash chain. Works on the database directly, so it also
answers when the server is down (and cannot be fooled by a server that was tampered with)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.output import Table, console, err, print_json

if TYPE_CHECKING:
    from conveyor.store.db import Database

# the database and the log are imported by the commands (not when any `conveyor` command starts)

app = typer.Typer(help="The append-only, hash-chained audit log.", invoke_without_command=True)
Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]


def _db() -> Database:
    from conveyor.settings import Settings
    from conveyor.store.db import Database

    db = Database(Settings().app_database_url)
    db.migrate()
    return db


@app.callback()
def listing(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 50,
    json_out: Json = False,
) -> None:
    """List audit entries, newest first."""
    if ctx.invoked_subcommand:
        return
    from conveyor.audit import log as audit

    with _db().read() as conn:
        entries = audit.recent(conn, limit)
    if json_out:
        print_json(entries)
        return
    table = Table("id", "at", "actor", "action", "subject")
    for e in entries:
        table.add_row(str(e["id"]), e["at"][:19], e["actor"], e["action"], e["subject"][:40])
    console.print(table)


@app.command("verify")
def verify(
    expect: Annotated[
        str | None,
        typer.Option("--expect", help="a head hash printed earlier and kept elsewhere: it must be in the log"),
    ] = None,
    json_out: Json = False,
) -> None:
    """Check the HMAC chain and its anchor: exit 0 when intact, 1 naming the first entry that was
    edited, deleted or inserted, or saying that the newest entries were cut off. Prints the head:
    keep it somewhere else and pass it to --expect later."""
    from conveyor.audit import keys as audit_keys
    from conveyor.audit import log as audit
    from conveyor.settings import Settings

    settings = Settings()
    db = _db()
    binding = audit_keys.bind(db, settings, create=False)  # checking never makes a key
    with db.read() as conn:
        check = audit.verify(conn, expect)
    if json_out:
        print_json({**check.as_json(), "key": binding.key_source if binding else None})
    elif check.ok:
        keyed = check.entries - check.unkeyed
        console.print(
            f"audit log intact: {check.entries} entries ({keyed} with HMAC, {check.unkeyed} from before the key)",
            highlight=False,
        )
        if check.head:
            console.print(f"head: entry {check.head.id} {check.head.hash}", highlight=False)
        if check.anchor:
            console.print(f"anchor: entry {check.anchor.id} (HOME/audit.head) is in the chain", highlight=False)
    else:
        where = f" at entry {check.bad_entry}" if check.bad_entry is not None else ""
        err.print(f"audit log broken{where}: {check.problem}", highlight=False, soft_wrap=True)
    if binding is None and not json_out:
        err.print(
            "no audit key (HOME/audit.key or CONVEYOR_AUDIT_KEY): only entries from before the key can be checked",
            highlight=False,
        )
    if not check.ok:
        raise typer.Exit(1)
