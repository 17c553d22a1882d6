"""Who is signed in: the session cookie, read on every dashboard request, and the CSRF check
every POST goes through before it may change anything."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from conveyor.auth.sessions import COOKIE, Session, find_session
from conveyor.errors import Forbidden
from conveyor.runtime import Runtime
from conveyor.web.pages import SignInRequired, runtime

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def _lookup(request: Request) -> Session | None:
    rt = runtime(request)
    with rt.db.read() as conn:
        return find_session(conn, request.cookies.get(COOKIE), rt.clock.now())


async def signed_in(request: Request) -> Session:
    """The session of this request; SignInRequired (a redirect to /login) when there is none."""
    session = await run_in_threadpool(_lookup, request)
    if session is None:
        raise SignInRequired
    request.state.session = session
    return session


async def posted(request: Request, session: Annotated[Session, Depends(signed_in)]) -> Session:
    """The session of a POST whose form (or X-CSRF-Token header) carries the session's CSRF token."""
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not session.csrf_ok(sent):
        raise Forbidden(
            "the form's CSRF token is missing or does not match your session; nothing was changed",
            fix="reload the page and submit the form again",
        )
    return session


def still_signed_in(rt: Runtime, session_id: str | None) -> Callable[[], bool]:
    """A check for long-lived streams: is the session they started with still valid?"""

    def check() -> bool:
        with rt.db.read() as conn:
            return find_session(conn, session_id, rt.clock.now()) is not None

    return check


SessionDep = Annotated[Session, Depends(signed_in)]
PostDep = Annotated[Session, Depends(posted)]
