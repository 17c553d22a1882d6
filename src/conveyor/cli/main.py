"""The `conveyor` command: every command group is registered here."""

from __future__ import annotations

import typer

from conveyor.cli import (
    admin,
    audit,
    calendar,
    demo,
    deploy,
    flags,
    gates,
    hotfix,
    logs,
    migrations,
    notify,
    server,
    services,
)
from conveyor.cli import monitor as monitoring
from conveyor.cli.agent import app as agent_app
from conveyor.cli.monitor_watch import watch

app = typer.Typer(
    name="conveyor",
    help="Conveyor: durable deploy pipelines, gates and feature flags.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(server.server)
app.command()(server.validate)
app.add_typer(agent_app, name="agent")
app.command()(demo.demo)
app.add_typer(services.app, name="services")
app.command()(services.maintenance)
for command in (deploy.deploy, deploy.rollback, deploy.migrate, deploy.cancel, deploy.status, deploy.history):
    app.command()(command)
app.command()(logs.logs)
app.command("watch")(watch)
app.command()(gates.why)
app.command()(gates.approve)
app.command()(gates.checklist)
app.command()(gates.verify)
app.add_typer(gates.checks_app, name="checks")
app.command()(calendar.calendar)
app.add_typer(calendar.freeze_app, name="freeze")
app.add_typer(audit.app, name="audit")
app.add_typer(admin.users_app, name="users")
app.add_typer(admin.tokens_app, name="tokens")
app.add_typer(flags.app, name="flags")
app.add_typer(notify.app, name="notify")
app.add_typer(hotfix.app, name="hotfix")
app.add_typer(monitoring.app, name="monitoring")
app.add_typer(migrations.app, name="migrations")
app.command("allow-missing")(hotfix.allow_missing)
app.command()(hotfix.revert)


def main() -> None:
    app()
