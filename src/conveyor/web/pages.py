"""Rendering pages: the Jinja2 templates and their filters, and the route class every dashboard
route uses. It turns the errors the engine raises into a page with the right status (403 for
Forbidden, 409 for Conflict, ...) and a missing sign-in into a redirect to /login."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from conveyor import __version__
from conveyor.errors import ConveyorError
from conveyor.runtime import Runtime

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in page, fragments answer 401."""


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def _ago(value: datetime | None) -> Markup:
    if value is None:
        return Markup("&ndash;")
    seconds = int((datetime.now(UTC) - value).total_seconds())
    if seconds < 60:  # coarse on purpose: a live part changes only when something happened
        text = "just now"
    elif seconds < 3600:
        text = f"{seconds // 60} min ago"
    elif seconds < 86400:
        text = f"{seconds // 3600} h ago"
    else:
        text = f"{seconds // 86400} d ago"
    stamp = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(value.isoformat(), stamp, text)


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = (end - start).total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def ticket_href(key: str | None, template: str | None) -> str | None:
    """The tracker URL of a ticket key, from CONVEYOR_TICKET_URL (``{ticket}`` is replaced)."""
    if not key or not template or "{ticket}" not in template:
        return None
    return template.replace("{ticket}", quote(key, safe=""))


def short_ref(ref: str | None) -> str:
    """A ref as people read it: a full commit SHA is cut to 12 characters, names stay whole."""
    ref = ref or ""
    is_sha = len(ref) == 40 and all(c in "0123456789abcdef" for c in ref)
    return ref[:12] if is_sha else ref


def web_url(url: str | None) -> str | None:
    """Only http(s) links from reported data (a CI check's URL): never ``javascript:`` and the like."""
    return url if url and url.lower().startswith(("https://", "http://")) else None


templates.env.filters.update(
    ago=_ago,
    duration=_duration,
    ticket_href=ticket_href,
    web_url=web_url,
    ref=short_ref,
    short=lambda s: (s or "")[:12],
)
templates.env.globals.update(version=__version__)


def digest(html: str) -> str:
    """A short fingerprint of a rendered fragment (live updates send a part only when it changed)."""
    return hashlib.sha256(html.encode()).hexdigest()[:16]


def fragment(name: str, context: Mapping[str, Any]) -> str:
    return templates.get_template(name).render(**context)


def page(request: Request, name: str, context: Mapping[str, Any], status: int = 200) -> Response:
    """A whole page: the template with the signed-in user, their CSRF token and the settings."""
    session = getattr(request.state, "session", None)
    rt = runtime(request)
    full = {
        "session": session,
        "user": session.user if session else None,
        "csrf": session.csrf_token if session else "",
        "ticket_url": rt.settings.ticket_url,
        "path": request.url.path,
        **context,
    }
    return templates.TemplateResponse(request, name, full, status_code=status)


def error_page(request: Request, status: int, message: str, fix: str | None = None) -> Response:
    context = {"status": status, "message": message, "fix": fix, "back": request.headers.get("referer")}
    if request.headers.get("hx-request"):
        return templates.TemplateResponse(request, "_error.html", context, status_code=status)
    return page(request, "error.html", context, status)


class PageRoute(APIRoute):
    """Dashboard routes: errors become pages, never JSON; nothing else changes about them."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                if request.headers.get("hx-request") or request.url.path.endswith("/events"):
                    return Response("sign in again", status_code=401, headers={"HX-Redirect": "/login"})
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                target = target if request.method == "GET" else "/"  # a form posted after expiry
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            except ConveyorError as exc:
                return error_page(request, exc.http_status, exc.message, exc.fix)
            except RequestValidationError as exc:
                problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
                return error_page(request, 400, f"the form is not valid: {problems}", "go back and correct it")

        return guarded
