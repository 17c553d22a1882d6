"""History: every deployment, newest first, filtered by service, environment, state and user;
50 to a page."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from conveyor.domain.deployment import DeploymentState
from conveyor.errors import InvalidInput
from conveyor.store import services as service_store
from conveyor.store.tables import users
from conveyor.web import queries
from conveyor.web.pages import PageRoute, page, runtime
from conveyor.web.session import SessionDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)
PAGE = 50


@router.get("/history")
def history(
    request: Request,
    session: SessionDep,
    service: str = Query("", max_length=64),
    environment: str = Query("", max_length=32),
    state: str = Query("", max_length=16),
    user: str = Query("", max_length=64),
    before: int | None = None,
) -> Response:
    rt = runtime(request)
    if state and state not in DeploymentState.__members__.values():
        known = ", ".join(s.value for s in DeploymentState)
        raise InvalidInput(f"unknown state {state!r}", fix=f"use one of: {known}")
    with rt.db.read() as conn:
        services = service_store.list_services(conn)
        chosen = service_store.get_service(conn, service) if service else None
        rows = queries.history(
            conn,
            service_id=chosen.id if chosen else None,
            environment=environment or None,
            state=DeploymentState(state) if state else None,
            actor=user or None,
            before=before,
            limit=PAGE + 1,
        )
        names: list[str] = list(conn.execute(select(users.c.name).order_by(users.c.name)).scalars().all())
    environments = list(dict.fromkeys(e for s in services for e in rt.spec_of(s.config_text).environments))
    filters = {"service": service, "environment": environment, "state": state, "user": user}
    more = len(rows) > PAGE
    return page(
        request,
        "history.html",
        {
            "rows": rows[:PAGE],
            "more": more,
            "next_before": rows[PAGE - 1].seq if more else None,
            "filters": filters,
            "services": services,
            "environments": environments,
            "states": [s.value for s in DeploymentState],
            "users": names,
        },
    )
