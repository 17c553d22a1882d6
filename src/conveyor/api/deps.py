"""Shared FastAPI dependencies: the runtime and the authenticated user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from conveyor.auth.users import User, authenticate
from conveyor.engine.runtime import Runtime
from conveyor.errors import Forbidden


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def current_user(request: Request, rt: RuntimeDep) -> User:
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    with rt.db.begin() as conn:
        return authenticate(conn, token)


UserDep = Annotated[User, Depends(current_user)]


def require_admin(user: UserDep) -> User:
    if not user.has_role("admin"):
        raise Forbidden(f"{user.name} is not an admin", fix="ask an admin to do this")
    return user


AdminDep = Annotated[User, Depends(require_admin)]
