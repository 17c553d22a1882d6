"""The dashboard: server-rendered pages (Jinja2 + a vendored htmx, no JS build step), live
updates over server-sent events, sign-in with sessions and CSRF tokens. See docs/dashboard.md."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from conveyor.web import (
    audit,
    deploy,
    deployment,
    flag,
    flags,
    history,
    hotfix,
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


def install(app: FastAPI) -> None:
    """Add the dashboard's routes, its static files under /static, and the Server-Timing header."""
    for module in (
        signin,
        overview,
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
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(ServerTiming)
