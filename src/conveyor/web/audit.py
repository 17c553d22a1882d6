"""Audit: the hash-chained log, newest first, with the chain's verify status (admins only, as in
the API: GET /api/v1/audit)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from conveyor.audit import log as audit
from conveyor.domain.clock import as_utc
from conveyor.errors import Forbidden
from conveyor.store.tables import audit_log
from conveyor.web.pages import PageRoute, page, runtime
from conveyor.web.session import SessionDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)
PAGE = 100


@router.get("/audit")
def audit_page(
    request: Request,
    session: SessionDep,
    actor: str = Query("", max_length=64),
    action: str = Query("", max_length=64),
    before: int | None = None,
) -> Response:
    if "admin" not in session.user.roles:
        raise Forbidden(f"{session.user.name} is not an admin; only admins may read the audit log")
    rt = runtime(request)
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(PAGE + 1)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if action:
        query = query.where(audit_log.c.action == action)
    if before is not None:
        query = query.where(audit_log.c.id < before)
    with rt.db.read() as conn:
        rows = conn.execute(query).all()
        chain = audit.verify(conn)
    entries = [
        {
            "id": r.id,
            "at": as_utc(r.at),
            "actor": r.actor,
            "action": r.action,
            "subject": r.subject,
            "details": r.details,
            "hash": r.hash,
        }
        for r in rows[:PAGE]
    ]
    more = len(rows) > PAGE
    return page(
        request,
        "audit.html",
        {
            "entries": entries,
            "chain": chain,
            "filters": {"actor": actor, "action": action},
            "next_before": entries[-1]["id"] if more else None,
        },
    )
