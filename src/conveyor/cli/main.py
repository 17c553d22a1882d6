"""The `conveyor` command: every command group is registered here.

A command's module is imported only when that command runs: `conveyor deploy production` imports
the deploy commands and the API client, not the server, the flags model or the config loader. A
run without a known command name (`conveyor --help`, a typo) builds the whole CLI, so the help and
the "no such command" errors are Typer's own. ``app`` (the whole CLI) is built on first access.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import typer

HELP = "Conveyor: durable deploy pipelines, gates and feature flags."

# (name on the command line, module, attribute, a group of subcommands?) in the order of --help
COMMANDS: tuple[tuple[str, str, str, bool], ...] = (
    ("server", "conveyor.cli.server", "server", False),
    ("validate", "conveyor.cli.server", "validate", False),
    ("agent", "conveyor.cli.agent", "app", True),
    ("demo", "conveyor.cli.demo", "demo", False),
    ("services", "conveyor.cli.services", "app", True),
    ("maintenance", "conveyor.cli.services", "maintenance", False),
    ("deploy", "conveyor.cli.deploy", "deploy", False),
    ("rollback", "conveyor.cli.deploy", "rollback", False),
    ("migrate", "conveyor.cli.deploy", "migrate", False),
    ("cancel", "conveyor.cli.deploy", "cancel", False),
    ("status", "conveyor.cli.deploy", "status", False),
    ("history", "conveyor.cli.deploy", "history", False),
    ("logs", "conveyor.cli.logs", "logs", False),
    ("watch", "conveyor.cli.monitor_watch", "watch", False),
    ("why", "conveyor.cli.gates", "why", False),
    ("approve", "conveyor.cli.gates", "approve", False),
    ("checklist", "conveyor.cli.gates", "checklist", False),
    ("verify", "conveyor.cli.gates", "verify", False),
    ("checks", "conveyor.cli.gates", "checks_app", True),
    ("calendar", "conveyor.cli.calendar", "calendar", False),
    ("freeze", "conveyor.cli.calendar", "freeze_app", True),
    ("audit", "conveyor.cli.audit", "app", True),
    ("users", "conveyor.cli.admin", "users_app", True),
    ("tokens", "conveyor.cli.admin", "tokens_app", True),
    ("flags", "conveyor.cli.flags", "app", True),
    ("notify", "conveyor.cli.notify", "app", True),
    ("hotfix", "conveyor.cli.hotfix", "app", True),
    ("monitoring", "conveyor.cli.monitor", "app", True),
    ("migrations", "conveyor.cli.migrations", "app", True),
    ("allow-missing", "conveyor.cli.hotfix", "allow_missing", False),
    ("revert", "conveyor.cli.hotfix", "revert", False),
)


def build(only: str | None = None) -> typer.Typer:
    """The CLI with every command, or with the one named ``only`` (still a group of commands)."""
    cli = typer.Typer(
        name="conveyor", help=HELP, no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False
    )
    for name, module, attribute, group in COMMANDS:
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(module), attribute)
        if group:
            cli.add_typer(target, name=name)
        else:
            cli.command(name)(target)
    if only is not None:
        # a Typer with a single command would run it without its name; a callback keeps the group
        cli.callback()(_group)
    return cli


def _group() -> None:
    pass


def command_name(argv: Sequence[str]) -> str | None:
    """The command a run names, when it names a known one first (options before it: the whole CLI)."""
    if not argv or argv[0].startswith("-"):
        return None
    return argv[0] if any(argv[0] == name for name, *_ in COMMANDS) else None


def main() -> None:
    build(command_name(sys.argv[1:]))()


def __getattr__(name: str) -> typer.Typer:
    if name == "app":
        cli = build()
        globals()["app"] = cli
        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
