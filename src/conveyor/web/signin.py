"""Sign in with a user name and password, and sign out. Both are audited (``user.login``,
``user.login_failed``, ``user.logout``) and throttled per user name and per client address
(``auth/throttle.py``: 429 with Retry-After once a key is locked). The sign-in form has a CSRF
token too: before there is a session it is a double-submit cookie (the form's hidden field must equal the cookie)."""

from __future__ import annotations

import hmac
import math
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from conveyor.audit import log as audit
from conveyor.auth import throttle
from conveyor.auth.sessions import COOKIE, LIFETIME, end_session, find_session, new_token, start_session
from conveyor.auth.users import check_password
from conveyor.errors import Forbidden, Unauthorized
from conveyor.web.pages import PageRoute, page, runtime
from conveyor.web.session import PostDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)
LOGIN_COOKIE = "conveyor_login"


def safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute URL to somewhere else (an open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _form(request: Request, next_url: str, status: int = 200, message: str | None = None, name: str = "") -> Response:
    token = new_token()
    response = page(request, "login.html", {"next": next_url, "login_csrf": token, "message": message, "name": name})
    response.status_code = status
    secure = request.url.scheme == "https"
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, httponly=True, samesite="lax", secure=secure)
    return response


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    rt = runtime(request)
    with rt.db.read() as conn:
        if find_session(conn, request.cookies.get(COOKIE), rt.clock.now()):
            return RedirectResponse(safe_next(next), status_code=303)
    return _form(request, safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), csrf_token.encode()):
        raise Forbidden("the sign-in form's CSRF token is missing or stale", fix="reload the sign-in page")
    rt = runtime(request)
    client = request.client.host if request.client else None
    name = username.strip()
    attempt_keys = throttle.keys(name, client)

    def attempt() -> str | timedelta | None:
        """A session id; or how long to wait (throttled); or None (refused)."""
        user, reason = None, ""
        now = rt.clock.now()
        with rt.db.read() as conn:  # argon2 takes a while: not inside a write transaction
            wait = throttle.retry_after(conn, attempt_keys, now)
            if wait is not None:  # refused before any password is checked; not audited (a flood would fill the log)
                return wait
            try:
                user = check_password(conn, name, password)
            except Unauthorized as exc:
                reason = exc.message
        now = rt.clock.now()
        with rt.db.begin() as conn:
            if user is None:
                locked = throttle.record_failure(conn, attempt_keys, now)
                details = {"client": client, "reason": reason}
                if locked is not None:
                    details["locked_until"] = locked.isoformat()
                audit.append(
                    conn,
                    at=now,
                    actor="anonymous",
                    action="user.login_failed",
                    subject=name[:255] or "(empty)",
                    details=details,
                )
                return None
            throttle.record_success(conn, name)
            session_id, _session = start_session(conn, user, now)
            audit.append(
                conn, at=now, actor=user.name, action="user.login", subject=user.name, details={"client": client}
            )
            return session_id

    outcome = await run_in_threadpool(attempt)
    if isinstance(outcome, timedelta):
        seconds = max(1, math.ceil(outcome.total_seconds()))
        message = f"Too many failed sign-ins: try again in {seconds} s."
        response = _form(request, safe_next(next), 429, message, username)
        response.headers["Retry-After"] = str(seconds)
        return response
    if outcome is None:
        return _form(request, safe_next(next), 401, "Unknown user or wrong password.", username)
    session_id = outcome
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, session: PostDep) -> Response:
    rt = runtime(request)
    now = rt.clock.now()
    with rt.db.begin() as conn:
        end_session(conn, request.cookies.get(COOKIE))
        audit.append(conn, at=now, actor=session.user.name, action="user.logout", subject=session.user.name)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
