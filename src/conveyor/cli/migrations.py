"""migrations show / acknowledge: what the lint found in a deployment's migrations (docs/database.md)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="A deployment's migrations: their SQL, the lint's findings, acknowledge them.", no_args_is_help=True
)
