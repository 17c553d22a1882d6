"""What admins do to accounts: disable and enable users, set their roles and passwords, list and
revoke anyone's API tokens. Each takes effect at once: tokens and sessions are checked against the
user's row on every request, and disabling a user or changing their password also ends their
dashboard sessions. The callers (CLI, API, dashboard) write the audit entry in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, false, select, update

from conveyor.auth.users import User, get_user, hash_password
from conveyor.domain.clock import as_utc
from conveyor.domain.roles import check_role
from conveyor.errors import Conflict, InvalidInput, NotFound
from conveyor.store.tables import tokens, users, web_sessions

MIN_PASSWORD = 8


@dataclass(frozen=True)
class Account:
    name: str
    roles: tuple[str, ...]
    disabled: bool
    has_password: bool
    created_at: datetime
    live_tokens: int

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "roles": list(self.roles),
            "disabled": self.disabled,
            "has_password": self.has_password,
            "created_at": self.created_at.isoformat(),
            "live_tokens": self.live_tokens,
        }


@dataclass(frozen=True)
class TokenInfo:
    id: int
    user: str
    prefix: str
    name: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "user": self.user,
            "prefix": self.prefix,
            "name": self.name,
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_used_at),
            "revoked_at": iso(self.revoked_at),
        }


def list_accounts(conn: Connection) -> list[Account]:
    live: dict[int, int] = {}
    for row in conn.execute(select(tokens.c.user_id).where(tokens.c.revoked_at.is_(None))):
        live[row.user_id] = live.get(row.user_id, 0) + 1
    rows = conn.execute(select(users).order_by(users.c.name))
    return [
        Account(
            r.name, tuple(r.roles), bool(r.disabled), bool(r.password_hash), as_utc(r.created_at), live.get(r.id, 0)
        )
        for r in rows
    ]


def list_tokens(conn: Connection, user: str | None = None) -> list[TokenInfo]:
    """Every token (or every token of ``user``), oldest first: prefixes only, never the secret."""
    return _tokens(conn, None if user is None else tokens.c.user_id == get_user(conn, user).id)


def _tokens(conn: Connection, where: Any) -> list[TokenInfo]:
    query = select(tokens, users.c.name.label("user_name")).join(users, users.c.id == tokens.c.user_id)
    if where is not None:
        query = query.where(where)
    rows = conn.execute(query.order_by(tokens.c.id))
    return [
        TokenInfo(r.id, r.user_name, r.prefix, r.name, as_utc(r.created_at), _utc(r.last_used_at), _utc(r.revoked_at))
        for r in rows
    ]


def _utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


def _enabled_admins(conn: Connection) -> list[str]:
    rows = conn.execute(select(users.c.name, users.c.roles).where(users.c.disabled == false()))
    return [r.name for r in rows if "admin" in r.roles]


def _keep_an_admin(conn: Connection, name: str, change: str) -> None:
    if _enabled_admins(conn) == [name]:
        raise Conflict(
            f"{change} would leave no enabled admin ({name} is the last one)",
            fix="make another user an admin first, e.g. `conveyor users roles OTHER --role admin`",
        )


def end_sessions(conn: Connection, user: User) -> int:
    """Sign the user out of every dashboard session; returns how many there were."""
    return conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user.id)).rowcount or 0


def set_disabled(conn: Connection, name: str, disabled: bool) -> dict[str, Any]:
    """Disable (or enable) ``name``. Disabling ends their sessions; their tokens stay revocable
    but stop working while the user is disabled. Returns what changed, for the audit entry."""
    user = get_user(conn, name)
    if disabled:
        _keep_an_admin(conn, name, f"disabling {name}")
    before = bool(conn.execute(select(users.c.disabled).where(users.c.id == user.id)).scalar())
    conn.execute(update(users).where(users.c.id == user.id).values(disabled=disabled))
    ended = end_sessions(conn, user) if disabled else 0
    return {"disabled": {"before": before, "after": disabled}, "sessions_ended": ended}


def set_roles(conn: Connection, name: str, roles: list[str]) -> dict[str, Any]:
    """Replace the roles of ``name``; the change applies to their next request."""
    if not roles:
        raise InvalidInput("a user needs at least one role", fix="pass --role ROLE (several times for several)")
    wanted = list(dict.fromkeys(check_role(r) for r in roles))
    user = get_user(conn, name)
    if "admin" in user.roles and "admin" not in wanted:
        _keep_an_admin(conn, name, f"removing the admin role from {name}")
    conn.execute(update(users).where(users.c.id == user.id).values(roles=wanted))
    return {"roles": {"before": list(user.roles), "after": wanted}}


def set_password(conn: Connection, name: str, password: str) -> dict[str, Any]:
    """Set the dashboard password of ``name`` (argon2) and end their sessions."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(
            f"the password is {len(password)} characters long", fix=f"use at least {MIN_PASSWORD} characters"
        )
    user = get_user(conn, name)
    conn.execute(update(users).where(users.c.id == user.id).values(password_hash=hash_password(password)))
    return {"password": "changed", "sessions_ended": end_sessions(conn, user)}


def revoke_token(conn: Connection, token_id: int, now: datetime) -> TokenInfo:
    """Revoke any user's token by its id; revoking a revoked token is a conflict, not a no-op, so
    the caller learns it was already dead."""
    found = _tokens(conn, tokens.c.id == token_id)
    if not found:
        raise NotFound(f"no API token with id {token_id}", fix="list them with `conveyor tokens list`")
    token = found[0]
    if token.revoked_at is not None:
        raise Conflict(f"token {token_id} ({token.prefix}…) was already revoked at {token.revoked_at.isoformat()}")
    conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_at=now))
    return TokenInfo(token.id, token.user, token.prefix, token.name, token.created_at, token.last_used_at, now)
