"""users and tokens: work on the database directly, so an operator can bootstrap or recover
access with no server running."""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.audit import log as audit
from conveyor.auth.users import add_user, create_token, get_user
from conveyor.cli.output import console, handles_errors, print_json
from conveyor.domain.clock import SystemClock
from conveyor.settings import Settings
from conveyor.store.db import Database

users_app = typer.Typer(help="Manage users (directly on the database).", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage API tokens (directly on the database).", no_args_is_help=True)
Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]


def _db() -> Database:
    db = Database(Settings().app_database_url)
    db.migrate()
    return db


@users_app.command("add")
@handles_errors
def users_add(
    name: Annotated[str, typer.Argument(help="user name")],
    role: Annotated[list[str], typer.Option("--role", help="engineer, release_manager, manager or admin")],
    password: Annotated[str | None, typer.Option(help="password for the dashboard sign-in")] = None,
    json_out: Json = False,
) -> None:
    """Create a user with one or more roles."""
    db, now = _db(), SystemClock().now()
    with db.begin() as conn:
        user = add_user(conn, name, role, now, password)
        audit.append(conn, at=now, actor="cli", action="user.added", subject=name, details={"roles": role})
    if json_out:
        print_json({"name": user.name, "roles": list(user.roles)})
    else:
        console.print(f"user {user.name} added with roles {', '.join(user.roles)}", highlight=False)


@tokens_app.command("create")
@handles_errors
def tokens_create(
    user: Annotated[str, typer.Argument(help="whose token")],
    name: Annotated[str | None, typer.Option(help="a label for the token")] = None,
    json_out: Json = False,
) -> None:
    """Create an API token; it is printed once and stored only as a hash."""
    db, now = _db(), SystemClock().now()
    with db.begin() as conn:
        found = get_user(conn, user)
        token = create_token(conn, found, now, name)
        audit.append(conn, at=now, actor="cli", action="token.created", subject=user, details={"prefix": token[:10]})
    if json_out:
        print_json({"user": user, "token": token})
    else:
        print(token)
