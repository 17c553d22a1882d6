"""The server's ASGI app: REST API and the dashboard, with the engine started in its
lifespan. ``conveyor server`` runs it under uvicorn."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from conveyor import __version__
from conveyor import runtime as engine
from conveyor.api import admin, calendar, deployments, errors, flags, gates, hooks, metrics, notify, ofrep, services
from conveyor.api import alerts as alerts_api
from conveyor.api import hotfix as hotfix_api
from conveyor.api import instances as instance_logs
from conveyor.api import migrations as migrations_api
from conveyor.api import monitoring as monitoring_api
from conveyor.api.headers import SecurityHeaders
from conveyor.api.limits import BodyLimit, UrlLimit
from conveyor.api.models import Health
from conveyor.audit import keys as audit_keys
from conveyor.audit import log as audit
from conveyor.auth.users import add_user, count_users, create_token
from conveyor.engine import gating, pipeline  # noqa: F401  (the workflows: registered before DBOS launches)
from conveyor.engine.deployments import reconcile
from conveyor.engine.merge_back import Worker as MergeBackWorker
from conveyor.engine.triggers import Poller
from conveyor.notify.host import NotifyHost
from conveyor.runtime import Runtime
from conveyor.store.db import private_dir, private_sqlite
from conveyor.web import ROUTERS as dashboard_routers
from conveyor.web import install as install_dashboard

log = logging.getLogger("conveyor.server")


def bootstrap_admin(rt: Runtime) -> str | None:
    """On the very first start, create user ``admin`` and return a token for it (shown once)."""
    now = rt.clock.now()
    with rt.db.begin() as conn:
        if count_users(conn):
            return None
        user = add_user(conn, "admin", ["admin", "release_manager"], now)
        token = create_token(conn, user, now, "bootstrap")
        audit.append(
            conn,
            at=now,
            actor="conveyor",
            action="user.bootstrap",
            subject="admin",
            details={"token_prefix": token[:10]},
        )
    return token


def create_app(rt: Runtime) -> FastAPI:
    def start() -> tuple[Poller, NotifyHost]:
        private_dir(rt.settings.home.resolve())  # 0700 when created; the SQLite files are 0600
        private_sqlite(rt.settings.workflows_database_url)
        rt.db.migrate()
        audit_keys.bind(rt.db, rt.settings)  # HOME/audit.key (0600), made on the first start
        token = bootstrap_admin(rt)
        if token:
            print(f"Bootstrap admin token (shown once, stored only as a hash): {token}", file=sys.stderr, flush=True)
        engine.launch(rt)
        resumed = reconcile(rt)
        if resumed:
            log.warning("resuming %d unfinished deployment(s)", resumed)
        poller = Poller(rt, rt.settings.poll_interval)
        poller.start()
        app.state.merge_backs = MergeBackWorker(rt)  # hotfixes that reached production go back to merge_back
        app.state.merge_backs.start()
        notify = NotifyHost(rt)  # notifications: follows the event stream, never inside a deployment
        notify.start()
        print(
            f"Conveyor {__version__} serving on http://{rt.settings.host}:{rt.settings.port}",
            file=sys.stderr,
            flush=True,
        )
        return poller, notify

    def stop(hosted: tuple[Poller, NotifyHost]) -> None:
        app.state.merge_backs.stop()
        poller, notify = hosted
        notify.stop()
        poller.stop()
        engine.shutdown()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # DBOS refuses its blocking calls on a thread with a running event loop
        hosted = await run_in_threadpool(start)
        try:
            yield
        finally:
            await run_in_threadpool(stop, hosted)

    app = FastAPI(
        title="Conveyor",
        version=__version__,
        lifespan=lifespan,
        description="Self-hosted release platform: durable deploy pipelines, gates, flags.",
    )
    app.state.runtime = rt
    errors.install(app)
    app.router.routes[0:0] = ofrep.ROUTES  # OFREP evaluation, the hot path: matched before any other route
    for router in (
        *(m.router for m in (services, deployments, gates, calendar, hooks, admin, metrics)),
        *flags.ROUTERS,
        *(m.router for m in (notify, alerts_api, instance_logs, hotfix_api, monitoring_api, migrations_api)),
        *dashboard_routers,
    ):
        add_routes(app, router)
    install_dashboard(app)

    @app.get("/api/v1/health", tags=["health"])
    def health() -> Health:
        return Health(status="ok", version=__version__)

    app.add_middleware(BodyLimit, max_bytes=rt.settings.max_body_bytes)
    app.add_middleware(UrlLimit)
    app.add_middleware(SecurityHeaders)  # X-Frame-Options, nosniff, CSP on every response
    return app


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """``router``'s routes, as declared (its prefix, tags and dependencies already in each), added to
    ``app`` in order. ``app.include_router`` would wrap the router, and FastAPI (0.16x) builds every
    route's parameters and response models a second time for the wrapper, on the first request:
    a quarter of a server's start (measured with py-spy, docs/benchmarks.md)."""
    for route in router.routes:
        if not isinstance(route, Route):  # APIRoute is one; a router included in a router is not
            raise TypeError(f"{route!r} in a router of {router.prefix or '/'}: list its router beside it instead")
        app.router.routes.append(route)
