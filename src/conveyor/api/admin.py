"""Users, tokens and the audit log (admin only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from conveyor.api.deps import AdminDep, RuntimeDep, UserDep
from conveyor.audit import log as audit
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
def me(user: UserDep) -> dict[str, Any]:
    return {"name": user.name, "roles": list(user.roles)}


@router.post("/users", status_code=201)
def users_add(body: NewUser, rt: RuntimeDep, admin: AdminDep) -> dict[str, Any]:
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
    return {"name": user.name, "roles": list(user.roles)}


@router.post("/tokens", status_code=201)
def tokens_create(body: NewToken, rt: RuntimeDep, admin: AdminDep) -> dict[str, Any]:
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
    return {"user": user.name, "token": token}


@router.get("/audit")
def audit_list(rt: RuntimeDep, _admin: AdminDep, limit: int = Query(100, ge=1, le=10_000)) -> dict[str, Any]:
    with rt.db.read() as conn:
        entries = audit.recent(conn, limit)
        check = audit.verify(conn)
    return {
        "chain": {"ok": check.ok, "entries": check.entries, "bad_entry": check.bad_entry, "problem": check.problem},
        "entries": entries,
    }
