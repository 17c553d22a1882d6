"""The signed-in user's own API tokens: create one (shown once), revoke one. Audited as
``token.created`` and ``token.revoked``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from conveyor.audit import log as audit
from conveyor.auth.users import create_token
from conveyor.web import queries
from conveyor.web.pages import PageRoute, page, runtime
from conveyor.web.session import PostDep, SessionDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _page(request: Request, user_id: int, new_token: str | None = None, status: int = 200) -> Response:
    rt = runtime(request)
    with rt.db.read() as conn:
        tokens = queries.own_tokens(conn, user_id)
    return page(request, "tokens.html", {"tokens": tokens, "new_token": new_token}, status)


@router.get("/tokens")
def tokens_page(request: Request, session: SessionDep) -> Response:
    return _page(request, session.user.id)


@router.post("/tokens")
def tokens_create(request: Request, session: PostDep, name: Annotated[str, Form(max_length=64)] = "") -> Response:
    rt, user = runtime(request), session.user
    now = rt.clock.now()
    with rt.db.begin() as conn:
        token = create_token(conn, user, now, name.strip() or None)
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action="token.created",
            subject=user.name,
            details={"prefix": token[:10], "name": name.strip() or None, "via": "dashboard"},
        )
    response = _page(request, user.id, token, 201)
    response.headers["Cache-Control"] = "no-store"  # the token is on this page once
    return response


@router.post("/tokens/{token_id}/revoke")
def tokens_revoke(token_id: int, request: Request, session: PostDep) -> Response:
    rt, user = runtime(request), session.user
    now = rt.clock.now()
    with rt.db.begin() as conn:
        prefix = queries.revoke_own_token(conn, user.id, token_id, now)
        audit.append(
            conn, at=now, actor=user.name, action="token.revoked", subject=user.name, details={"prefix": prefix}
        )
    return RedirectResponse("/tokens", status_code=303)
