"""The overview: services x environments (the version serving, when and by whom it was deployed,
the latest deployment's state), the deployments waiting for the signed-in user, and the hotfix
merge-backs that are due. Live: the
board is sent again over SSE whenever it changes."""

from __future__ import annotations

from dataclasses import dataclass, replace

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select

from conveyor.auth.policy import may_deploy
from conveyor.auth.sessions import COOKIE
from conveyor.auth.users import User
from conveyor.domain.clock import as_utc
from conveyor.domain.deployment import DeploymentState
from conveyor.runtime import Runtime
from conveyor.store import deployments as store
from conveyor.store import hotfix_log
from conveyor.store import services as service_store
from conveyor.store.records import DeploymentRecord, ServiceRecord
from conveyor.store.tables import audit_log
from conveyor.web import live, queries
from conveyor.web.pages import PageRoute, digest, fragment, page, runtime
from conveyor.web.session import SessionDep, still_signed_in
from conveyor.web.waiting import allowed, needs

router = APIRouter(route_class=PageRoute, include_in_schema=False)
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Cell:
    environment: str
    serving: queries.Serving | None
    latest: DeploymentRecord | None
    may_deploy: bool


@dataclass(frozen=True)
class Row:
    service: ServiceRecord
    cells: list[Cell]


@dataclass(frozen=True)
class Waiting:
    deployment: DeploymentRecord
    needs: list[str]


def board(rt: Runtime, user: User) -> tuple[list[Row], list[Waiting]]:
    with rt.db.read() as conn:
        services = service_store.list_services(conn)
        serving = queries.serving(conn)
        rows: list[Row] = []
        for s in services:
            spec = rt.spec_of(s.config_text)
            cells = []
            for name, env in spec.environments.items():
                latest = store.list_deployments(conn, service_id=s.id, environment=name, limit=1)
                cells.append(
                    Cell(
                        name,
                        serving.get((s.id, name)),
                        latest[0] if latest else None,
                        may_deploy(user.name, user.roles, name, env).allowed,
                    )
                )
            rows.append(Row(s, cells))
        pending = store.list_deployments(conn, states=[DeploymentState.PENDING], limit=500)
        ids = [d.id for d in pending]
        approvers, ticked = queries.approvers_of(conn, ids), queries.ticked_items(conn, ids)
    by_id = {s.id: s for s in services}
    waiting = []
    for d in pending:
        spec_env = rt.spec_of(by_id[d.service_id].config_text).environments.get(d.environment)
        if spec_env is not None:
            wanted = needs(allowed(user, d, spec_env, approvers[d.id], ticked[d.id]))
            if wanted:
                waiting.append(Waiting(d, wanted))
    return rows, waiting


# database URL -> (the newest audit entry's id, the merge-backs due then). Merge-backs are read from
# the audit log, which has no index on the action: the scan runs again only when the log grew (it is
# append-only, one writer at a time, so an unchanged newest id means unchanged merge-backs).
_due: dict[str, tuple[int, list[hotfix_log.MergeBack]]] = {}


def merge_backs_due(rt: Runtime) -> list[hotfix_log.MergeBack]:
    """Hotfixes not yet merged back (merge-back due), oldest first: docs/hotfix.md."""
    key = rt.settings.app_database_url
    with rt.db.read() as conn:
        newest = conn.execute(select(func.max(audit_log.c.id))).scalar() or 0
        known = _due.get(key)
        if known is not None and known[0] == newest:
            return known[1]
        due = [replace(m, at=as_utc(m.at)) for m in hotfix_log.pending(conn)]  # SQLite hands back naive times
    _due[key] = (newest, due)
    return due


def _render(rt: Runtime, user: User) -> str:
    rows, waiting = board(rt, user)
    due = merge_backs_due(rt)
    return fragment("_board.html", {"rows": rows, "waiting": waiting, "user": user, "merge_backs": due})


@router.get("/")
def overview(request: Request, session: SessionDep) -> Response:
    html = _render(runtime(request), session.user)
    return page(request, "overview.html", {"board": html, "board_digest": digest(html)})


@router.get("/events/overview")
def overview_events(request: Request, session: SessionDep) -> StreamingResponse:
    rt = runtime(request)

    def render() -> tuple[dict[str, str], bool]:
        return {"board": _render(rt, session.user)}, False

    return live.stream(request, render, POLL_SECONDS, still_signed_in(rt, request.cookies.get(COOKIE)))
