"""migrations show / acknowledge: what the lint found in a deployment's migrations (docs/database.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from conveyor.api.models_migrations import MigrationsView
from conveyor.cli.client import Client, wire
from conveyor.cli.output import Table, console, handles_errors, print_json

app = typer.Typer(
    help="A deployment's migrations: their SQL, the lint's findings, acknowledge them.", no_args_is_help=True
)
Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
DeploymentId = Annotated[str, typer.Argument(help="deployment id (or an unambiguous prefix of 6+ characters)")]
Reason = Annotated[str, typer.Option("--reason", help="why the findings are safe (recorded in the audit log)")]


def _say(text: str) -> None:
    console.print(Text(text))


def print_migrations(view: MigrationsView) -> None:
    report = view.report
    _say(f"{view.deployment_id} ({view.service} {view.environment}, {view.state}) {view.sha[:12]}")
    if report is None:
        _say("not linted: the environment lints no migrations (migrate.lint), or it has not been linted yet")
    else:
        files = f": {', '.join(report.files)}" if report.files else ""
        _say(f"SQL from {report.source}{files}")
        if report.error:
            _say(f"the lint could not run: {report.error}")
        if report.findings:
            table = Table("rule", "line", "statement", "fix")
            for f in report.findings:
                blocks = "" if f.rule in view.rules else " (not in migrate.rules)"
                table.add_row(Text(f.rule + blocks), str(f.line), Text(f.statement), Text(f.fix))
            console.print(table)
        elif not report.error:
            _say("the lint found nothing")
    if view.unacknowledged:
        _say(f"not acknowledged: {', '.join(view.unacknowledged)}")
    for a in view.acknowledgements:
        _say(f"acknowledged by {a.user} at {a.at} ({', '.join(a.rules)}): {a.reason}")
    run = view.run
    if run is not None:
        took = f"took {run.seconds:.1f}s" if run.seconds is not None else "running"
        outcome = {True: "ok", False: "failed", None: "not finished"}[run.ok]
        extra = (", maintenance mode on" if run.maintenance else "") + (f", backup {run.backup}" if run.backup else "")
        _say(f"migration in {run.environment}: {took}, {outcome}{extra}")


@app.command("show")
@handles_errors
def show(deployment_id: DeploymentId, json_out: Json = False) -> None:
    """The SQL's source, each finding (rule, line, statement, fix), the acknowledgements of the
    commit, and the migration's duration once it ran."""
    view = Client().get_as(MigrationsView, f"/deployments/{deployment_id}/migrations")
    if json_out:
        print_json(wire(view))
        return
    print_migrations(view)


@app.command("acknowledge")
@handles_errors
def acknowledge(deployment_id: DeploymentId, reason: Reason, json_out: Json = False) -> None:
    """Acknowledge the findings for the deployment's commit (release managers): the migrations gate
    passes for them in every environment, and migrations_reviewed ticks itself where asked."""
    view = Client().send_as(
        MigrationsView, "POST", f"/deployments/{deployment_id}/migrations/acknowledge", {"reason": reason}
    )
    if json_out:
        print_json(wire(view))
        return
    print_migrations(view)
