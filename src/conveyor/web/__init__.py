"""The dashboard: server-rendered pages (Jinja2 + a vendored htmx, no JS build step), live
updates over server-sent events, sign-in with sessions and CSRF tokens. See docs/dashboard.md."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from conveyor.web import (
    audit,
    deploy,
    deployment,
    flag,
    flags,
    history,
    hotfix,
    instances,
    monitoring,
    overview,
    rollback,
    service,
    signin,
    tokens,
    users,
)
from conveyor.web.pages import HERE
from conveyor.web.timing import ServerTiming

# the dashboard's routers, in the order their routes are matched
ROUTERS: tuple[APIRouter, ...] = tuple(
    module.router
    for module in (
        signin,
        overview,
        instances,  # GET /services/{name}/output/{environment}, before the service page's routes
        service,
        hotfix,
        deploy,
        deployment,
        monitoring,
        rollback,
        history,
        flags,
        flag,
        audit,
        tokens,
        users,
    )
)


def install(app: FastAPI) -> None:
    """The dashboard's static files under /static, and the Server-Timing header; the composition
    root (conveyor/app.py) adds the routes of ``ROUTERS``."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(ServerTiming)
