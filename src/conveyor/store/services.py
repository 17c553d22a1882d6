"""Queries for services and the branch heads the trigger has already seen."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.errors import InvalidInput, NotFound
from conveyor.store.records import ServiceRecord
from conveyor.store.tables import branch_heads, services


def upsert_service(
    conn: Connection, name: str, source: str, repo_path: str, config_text: str, now: datetime
) -> tuple[ServiceRecord, bool]:
    """Create the service or refresh its registered config; True when it is new."""
    existing = conn.execute(select(services).where(services.c.name == name)).first()
    values = {"source": source, "repo_path": repo_path, "config_text": config_text, "updated_at": now}
    if existing:
        conn.execute(update(services).where(services.c.id == existing.id).values(**values))
        created = False
    else:
        conn.execute(services.insert().values(name=name, created_at=now, **values))
        created = True
    return get_service(conn, name), created


def get_service(conn: Connection, name: str) -> ServiceRecord:
    row = conn.execute(select(services).where(services.c.name == name)).first()
    if row is None:
        known = ", ".join(s.name for s in list_services(conn)) or "none yet"
        raise NotFound(f"no service named {name!r} (known: {known})", fix="add it with `conveyor services add PATH`")
    return ServiceRecord.of(row)


def get_service_by_id(conn: Connection, service_id: int) -> ServiceRecord:
    return ServiceRecord.of(conn.execute(select(services).where(services.c.id == service_id)).one())


def list_services(conn: Connection) -> list[ServiceRecord]:
    return [ServiceRecord.of(r) for r in conn.execute(select(services).order_by(services.c.name))]


def pick_service(conn: Connection, name: str | None) -> ServiceRecord:
    """The named service, or the only one when no name is given."""
    if name:
        return get_service(conn, name)
    all_services = list_services(conn)
    if len(all_services) == 1:
        return all_services[0]
    if not all_services:
        raise NotFound("no services yet", fix="add one with `conveyor services add PATH`")
    names = ", ".join(s.name for s in all_services)
    raise InvalidInput(f"more than one service ({names}); which one?", fix="pass --service NAME")


def advance_head(conn: Connection, service_id: int, branch: str, sha: str, now: datetime) -> bool:
    """Record ``sha`` as the branch's head; True only for the one caller that saw it change."""
    row = conn.execute(
        select(branch_heads.c.sha).where(branch_heads.c.service_id == service_id, branch_heads.c.branch == branch)
    ).first()
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(
                    branch_heads.insert().values(service_id=service_id, branch=branch, sha=sha, updated_at=now)
                )
            return True
        except IntegrityError:
            return False
    if row.sha == sha:
        return False
    result = conn.execute(
        update(branch_heads)
        .where(
            branch_heads.c.service_id == service_id,
            branch_heads.c.branch == branch,
            branch_heads.c.sha == row.sha,
        )
        .values(sha=sha, updated_at=now)
    )
    return result.rowcount == 1
