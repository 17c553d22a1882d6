"""users and tokens: work on the database directly, so an operator can bootstrap or recover
access with no server running. Every change is audited, with the operating-system user who ran
the command, under the same audit key as the server (HOME/audit.key or CONVEYOR_AUDIT_KEY)."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.output import Table, console, handles_errors, print_json
from conveyor.domain.clock import SystemClock
from conveyor.domain.roles import ROLES
from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from conveyor.store.db import Database

# The database, the audit log and the accounts are imported by the commands that use them, not
# when the CLI starts: every `conveyor` command would otherwise pay for SQLAlchemy and Alembic.

users_app = typer.Typer(help="Manage users (directly on the database).", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage API tokens (directly on the database).", no_args_is_help=True)
Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
Name = Annotated[str, typer.Argument(help="user name")]


def _db() -> Database:
    from conveyor.audit import keys as audit_keys
    from conveyor.settings import Settings
    from conveyor.store.db import Database

    settings = Settings()
    db = Database(settings.app_database_url)
    db.migrate()
    audit_keys.bind(db, settings)
    return db


def _accounts() -> Any:
    from conveyor.auth import accounts

    return accounts


def _actor() -> tuple[str, dict[str, Any]]:
    try:
        who = getpass.getuser()
    except Exception:  # no name for this uid (a container): the audit entry still says it was the CLI
        who = "unknown"
    return "cli", {"os_user": who}


@users_app.command("add")
@handles_errors
def users_add(
    name: Name,
    role: Annotated[list[str], typer.Option("--role", help=f"one of {', '.join(ROLES)}")],
    password: Annotated[str | None, typer.Option(help="password for the dashboard sign-in")] = None,
    json_out: Json = False,
) -> None:
    """Create a user with one or more roles."""
    from conveyor.audit import log as audit
    from conveyor.auth.users import add_user

    db, now = _db(), SystemClock().now()
    actor, via = _actor()
    with db.begin() as conn:
        user = add_user(conn, name, role, now, password)
        audit.append(conn, at=now, actor=actor, action="user.added", subject=name, details={"roles": role, **via})
    if json_out:
        print_json({"name": user.name, "roles": list(user.roles)})
    else:
        console.print(f"user {user.name} added with roles {', '.join(user.roles)}", highlight=False)


@users_app.command("list")
@handles_errors
def users_list(json_out: Json = False) -> None:
    """Every user: roles, disabled or not, whether they have a password, live tokens."""
    from conveyor.auth import accounts

    with _db().read() as conn:
        found = accounts.list_accounts(conn)
    if json_out:
        print_json([a.as_json() for a in found])
        return
    table = Table("name", "roles", "state", "password", "live tokens")
    for a in found:
        state = "disabled" if a.disabled else "enabled"
        table.add_row(a.name, ", ".join(a.roles), state, "yes" if a.has_password else "no", str(a.live_tokens))
    console.print(table)


def _change(name: str, action: str, change: Callable[[Connection], dict[str, Any]], json_out: bool, said: str) -> None:
    from conveyor.audit import log as audit

    db, now = _db(), SystemClock().now()
    actor, via = _actor()
    with db.begin() as conn:
        details = change(conn)
        audit.append(conn, at=now, actor=actor, action=action, subject=name, details={**details, **via})
    if json_out:
        print_json({"name": name, "change": details})
    else:
        console.print(said, highlight=False)


@users_app.command("disable")
@handles_errors
def users_disable(name: Name, json_out: Json = False) -> None:
    """Disable a user: their API tokens and dashboard sessions stop working at once."""
    _change(
        name,
        "user.disabled",
        lambda c: _accounts().set_disabled(c, name, True),
        json_out,
        f"user {name} disabled: their tokens no longer work and their sessions ended",
    )


@users_app.command("enable")
@handles_errors
def users_enable(name: Name, json_out: Json = False) -> None:
    """Enable a disabled user again (their unrevoked tokens work again; sessions do not come back)."""
    _change(name, "user.enabled", lambda c: _accounts().set_disabled(c, name, False), json_out, f"user {name} enabled")


@users_app.command("roles")
@handles_errors
def users_roles(
    name: Name,
    role: Annotated[list[str], typer.Option("--role", help="the user's roles from now on (repeat for several)")],
    json_out: Json = False,
) -> None:
    """Replace a user's roles; the change applies to their next request."""
    _change(
        name,
        "user.roles_changed",
        lambda c: _accounts().set_roles(c, name, role),
        json_out,
        f"user {name} now has roles {', '.join(dict.fromkeys(role))}",
    )


@users_app.command("password")
@handles_errors
def users_password(
    name: Name,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
    json_out: Json = False,
) -> None:
    """Set a user's dashboard password (asked for twice, or read from stdin); their sessions end."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise InvalidInput("no password was given", fix="type one, or pipe it to --password-stdin")
    _change(
        name,
        "user.password_changed",
        lambda c: _accounts().set_password(c, name, password),
        json_out,
        f"password of {name} changed; their sessions ended",
    )


@tokens_app.command("create")
@handles_errors
def tokens_create(
    user: Annotated[str, typer.Argument(help="whose token")],
    name: Annotated[str | None, typer.Option(help="a label for the token")] = None,
    json_out: Json = False,
) -> None:
    """Create an API token; it is printed once and stored only as a hash."""
    from conveyor.audit import log as audit
    from conveyor.auth.users import create_token, get_user

    db, now = _db(), SystemClock().now()
    actor, via = _actor()
    with db.begin() as conn:
        found = get_user(conn, user)
        token = create_token(conn, found, now, name)
        details = {"prefix": token[:10], **via}
        audit.append(conn, at=now, actor=actor, action="token.created", subject=user, details=details)
    if json_out:
        print_json({"user": user, "token": token})
    else:
        print(token)


@tokens_app.command("list")
@handles_errors
def tokens_list(
    user: Annotated[str | None, typer.Option("--user", help="only this user's tokens")] = None,
    json_out: Json = False,
) -> None:
    """Every API token (id, prefix, owner, last use); the secrets themselves are never stored."""
    from conveyor.auth import accounts

    with _db().read() as conn:
        found = accounts.list_tokens(conn, user)
    if json_out:
        print_json([t.as_json() for t in found])
        return
    table = Table("id", "prefix", "user", "name", "created", "last used", "revoked")

    def day(value: Any) -> str:
        return value.isoformat()[:19] if value else ""

    for t in found:
        table.add_row(
            str(t.id), t.prefix, t.user, t.name or "", day(t.created_at), day(t.last_used_at), day(t.revoked_at)
        )
    console.print(table)


@tokens_app.command("revoke")
@handles_errors
def tokens_revoke(token_id: Annotated[int, typer.Argument(help="the token's id (see `conveyor tokens list`)")]) -> None:
    """Revoke any user's API token by its id: it stops working with the next request."""
    from conveyor.audit import log as audit
    from conveyor.auth import accounts

    db, now = _db(), SystemClock().now()
    actor, via = _actor()
    with db.begin() as conn:
        token = accounts.revoke_token(conn, token_id, now)
        details = {"id": token.id, "prefix": token.prefix, "name": token.name, **via}
        audit.append(conn, at=now, actor=actor, action="token.revoked", subject=token.user, details=details)
    console.print(f"token {token.id} ({token.prefix}…) of {token.user} revoked", highlight=False)
