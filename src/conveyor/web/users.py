"""Users and every API token (admins only, as in the API): disable or enable a user, set their
roles or password, revoke anyone's token. Each change is audited like its API twin; a refused
POST is audited as ``forbidden``. See auth/accounts.py for what each change does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import Connection

from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth import accounts
from conveyor.auth.sessions import Session
from conveyor.domain.roles import ROLES
from conveyor.errors import Forbidden
from conveyor.web.pages import PageRoute, page, runtime
from conveyor.web.session import PostDep, SessionDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _admin(request: Request, session: Session, attempted: str | None = None) -> None:
    if "admin" in session.user.roles:
        return
    reason = f"{session.user.name} is not an admin; only admins may manage users and tokens"
    if attempted is None:
        raise Forbidden(reason)
    raise refuse(runtime(request), session.user.name, attempted, request.url.path, reason)


@router.get("/users")
def users_page(request: Request, session: SessionDep) -> Response:
    _admin(request, session)
    rt = runtime(request)
    with rt.db.read() as conn:
        found = accounts.list_accounts(conn)
        tokens = accounts.list_tokens(conn)
    return page(request, "users.html", {"accounts": found, "tokens": tokens, "roles": ROLES})


def _change(
    request: Request, session: Session, name: str, action: str, change: Callable[[Connection], dict[str, Any]]
) -> Response:
    _admin(request, session, action)
    rt = runtime(request)
    now = rt.clock.now()
    with rt.db.begin() as conn:
        details = change(conn)
        audit.append(
            conn, at=now, actor=session.user.name, action=action, subject=name, details={**details, "via": "dashboard"}
        )
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{name}/disable")
def disable(name: str, request: Request, session: PostDep) -> Response:
    return _change(request, session, name, "user.disabled", lambda c: accounts.set_disabled(c, name, True))


@router.post("/users/{name}/enable")
def enable(name: str, request: Request, session: PostDep) -> Response:
    return _change(request, session, name, "user.enabled", lambda c: accounts.set_disabled(c, name, False))


@router.post("/users/{name}/roles")
def roles(name: str, request: Request, session: PostDep, role: Annotated[list[str], Form()]) -> Response:
    return _change(request, session, name, "user.roles_changed", lambda c: accounts.set_roles(c, name, role))


@router.post("/users/{name}/password")
def password(
    name: str, request: Request, session: PostDep, new_password: Annotated[str, Form(max_length=256)]
) -> Response:
    return _change(
        request, session, name, "user.password_changed", lambda c: accounts.set_password(c, name, new_password)
    )


@router.post("/users/tokens/{token_id}/revoke")
def revoke(token_id: int, request: Request, session: PostDep) -> Response:
    _admin(request, session, "token.revoked")
    rt = runtime(request)
    now = rt.clock.now()
    with rt.db.begin() as conn:
        token = accounts.revoke_token(conn, token_id, now)
        details = {"id": token.id, "prefix": token.prefix, "name": token.name, "via": "dashboard"}
        audit.append(conn, at=now, actor=session.user.name, action="token.revoked", subject=token.user, details=details)
    return RedirectResponse("/users", status_code=303)
