"""audit: list the log and verify its hash chain. Works on the database directly, so it also
answers when the server is down (and cannot be fooled by a server that was tampered with)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from conveyor.audit import log as audit
from conveyor.cli.output import console, err, print_json
from conveyor.settings import Settings
from conveyor.store.db import Database

app = typer.Typer(help="The append-only, hash-chained audit log.", invoke_without_command=True)
Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]


def _db() -> Database:
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
def verify(json_out: Json = False) -> None:
    """Check the hash chain: exit 0 when intact, 1 naming the first entry that was edited or deleted."""
    with _db().begin() as conn:
        check = audit.verify(conn)
    if json_out:
        print_json({"ok": check.ok, "entries": check.entries, "bad_entry": check.bad_entry, "problem": check.problem})
    elif check.ok:
        console.print(f"audit log intact: {check.entries} entries")
    else:
        err.print(f"audit log broken at entry {check.bad_entry}: {check.problem}", highlight=False)
    if not check.ok:
        raise typer.Exit(1)
