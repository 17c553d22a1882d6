"""Users, tokens and the audit log (admin only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from conveyor.api.deps import AdminDep, RuntimeDep, UserDep
from conveyor.api.models_admin import Account, AccountChange, AuditLog, Token, TokenCreated, User
from conveyor.audit import log as audit
from conveyor.auth import accounts
from conveyor.auth.users import add_user, create_token, get_user

router = APIRouter(prefix="/api/v1", tags=["admin"])


class NewUser(BaseModel):
    name: str = Field(min_length=2, max_length=64)
    roles: list[str] = Field(min_length=1)
    password: str | None = Field(None, min_length=8, max_length=256)


class NewToken(BaseModel):
    user: str = Field(min_length=2, max_length=64)
    name: str | None = Field(None, max_length=64)


@router.get("/me")
def me(user: UserDep) -> User:
    return User(name=user.name, roles=list(user.roles))


@router.post("/users", status_code=201)
def users_add(body: NewUser, rt: RuntimeDep, admin: AdminDep) -> User:
    now = rt.clock.now()
    with rt.db.begin() as conn:
        user = add_user(conn, body.name, body.roles, now, body.password)
        audit.append(
            conn,
            at=now,
            actor=admin.name,
            action="user.added",
            subject=user.name,
            details={"roles": list(user.roles)},
        )
    return User(name=user.name, roles=list(user.roles))


@router.post("/tokens", status_code=201)
def tokens_create(body: NewToken, rt: RuntimeDep, admin: AdminDep) -> TokenCreated:
    now = rt.clock.now()
    with rt.db.begin() as conn:
        user = get_user(conn, body.user)
        token = create_token(conn, user, now, body.name)
        audit.append(
            conn,
            at=now,
            actor=admin.name,
            action="token.created",
            subject=user.name,
            details={"prefix": token[:10]},
        )
    return TokenCreated(user=user.name, token=token)


class Roles(BaseModel):
    roles: list[str] = Field(min_length=1, max_length=8)


class Password(BaseModel):
    password: str = Field(min_length=accounts.MIN_PASSWORD, max_length=256)


def _account_change(rt: RuntimeDep, admin: AdminDep, name: str, action: str, change: Any) -> AccountChange:
    """Run ``change(conn)`` and audit it as ``action`` in one transaction; answer with the account."""
    now = rt.clock.now()
    with rt.db.begin() as conn:
        details = change(conn)
        audit.append(conn, at=now, actor=admin.name, action=action, subject=name, details=details)
        account = next(a for a in accounts.list_accounts(conn) if a.name == name)
    return AccountChange.model_validate({**account.as_json(), "change": details})


@router.get("/users")
def users_list(rt: RuntimeDep, _admin: AdminDep) -> list[Account]:
    with rt.db.read() as conn:
        return [Account.model_validate(a.as_json()) for a in accounts.list_accounts(conn)]


@router.post("/users/{name}/disable")
def users_disable(name: str, rt: RuntimeDep, admin: AdminDep) -> AccountChange:
    """Disable a user: their tokens and dashboard sessions stop working with the next request."""
    return _account_change(rt, admin, name, "user.disabled", lambda c: accounts.set_disabled(c, name, True))


@router.post("/users/{name}/enable")
def users_enable(name: str, rt: RuntimeDep, admin: AdminDep) -> AccountChange:
    return _account_change(rt, admin, name, "user.enabled", lambda c: accounts.set_disabled(c, name, False))


@router.put("/users/{name}/roles")
def users_roles(name: str, body: Roles, rt: RuntimeDep, admin: AdminDep) -> AccountChange:
    """Replace a user's roles (the change applies to their next request)."""
    return _account_change(rt, admin, name, "user.roles_changed", lambda c: accounts.set_roles(c, name, body.roles))


@router.put("/users/{name}/password")
def users_password(name: str, body: Password, rt: RuntimeDep, admin: AdminDep) -> AccountChange:
    """Set a user's dashboard password; their sessions end. The password is not audited."""
    return _account_change(
        rt, admin, name, "user.password_changed", lambda c: accounts.set_password(c, name, body.password)
    )


@router.get("/tokens")
def tokens_list(rt: RuntimeDep, _admin: AdminDep, user: str | None = Query(None, max_length=64)) -> list[Token]:
    """Every API token (prefixes, never the secret), or those of one user."""
    with rt.db.read() as conn:
        return [Token.model_validate(t.as_json()) for t in accounts.list_tokens(conn, user)]


@router.post("/tokens/{token_id}/revoke")
def tokens_revoke(token_id: int, rt: RuntimeDep, admin: AdminDep) -> Token:
    """Revoke any user's token by its id: it stops working with the next request."""
    now = rt.clock.now()
    with rt.db.begin() as conn:
        token = accounts.revoke_token(conn, token_id, now)
        audit.append(
            conn,
            at=now,
            actor=admin.name,
            action="token.revoked",
            subject=token.user,
            details={"id": token.id, "prefix": token.prefix, "name": token.name},
        )
    return Token.model_validate(token.as_json())


@router.get("/audit")
def audit_list(rt: RuntimeDep, _admin: AdminDep, limit: int = Query(100, ge=1, le=10_000)) -> AuditLog:
    with rt.db.read() as conn:
        entries = audit.recent(conn, limit)
        check = audit.verify(conn)
    return AuditLog.model_validate({"chain": check.as_json(), "entries": entries})
