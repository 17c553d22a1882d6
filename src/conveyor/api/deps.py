"""Shared FastAPI dependencies: the runtime and the authenticated user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from conveyor.audit.refusals import refuse
from conveyor.auth.users import User, identify, touch_token
from conveyor.errors import Forbidden
from conveyor.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def current_user(request: Request, rt: RuntimeDep) -> User:
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    with rt.db.read() as conn:  # a read: most requests write nothing here
        credential = identify(conn, token)
    now = rt.clock.now()
    if credential.stale(now):  # last_used_at, written at most once a minute per token
        with rt.db.begin() as conn:
            touch_token(conn, credential.token_id, now)
    return credential.user


UserDep = Annotated[User, Depends(current_user)]


def require_admin(user: UserDep, rt: RuntimeDep, request: Request) -> User:
    """The user, if an admin; otherwise 403, audited as ``forbidden`` with what was attempted."""
    if not user.has_role("admin"):
        path = request.url.path
        refused = refuse(rt, user.name, f"{request.method} {path}", path, f"{user.name} is not an admin")
        raise Forbidden(refused.message, fix="ask an admin to do this")
    return user


AdminDep = Annotated[User, Depends(require_admin)]
