"""Queries for services and the branch heads the trigger has already seen."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.errors import InvalidInput, NotFound
from conveyor.store.records import ServiceRecord
from conveyor.store.tables import branch_heads, services


def upsert_service(
    conn: Connection,
    name: str,
    source: str,
    repo_path: str,
    config_text: str,
    now: datetime,
    *,
    github_repository: str | None = None,
) -> tuple[ServiceRecord, bool]:
    """Create the service or refresh its registered config; True when it is new. A changed GitHub
    repository forgets the repository id bound before."""
    existing = conn.execute(select(services).where(services.c.name == name)).first()
    values: dict[str, object] = {
        "source": source,
        "repo_path": repo_path,
        "config_text": config_text,
        "updated_at": now,
        "github_repository": github_repository,
    }
    if existing and existing.github_repository != github_repository:
        values["github_repository_id"] = None
    if existing:
        conn.execute(update(services).where(services.c.id == existing.id).values(**values))
        created = False
    else:
        conn.execute(services.insert().values(name=name, created_at=now, **values))
        created = True
    return get_service(conn, name), created


def get_service(conn: Connection, name: str) -> ServiceRecord:
    found = find_service(conn, name)
    if found is None:
        known = ", ".join(s.name for s in list_services(conn)) or "none yet"
        raise NotFound(f"no service named {name!r} (known: {known})", fix="add it with `conveyor services add PATH`")
    return found


def find_service(conn: Connection, name: str) -> ServiceRecord | None:
    row = conn.execute(select(services).where(services.c.name == name)).first()
    return ServiceRecord.of(row) if row is not None else None


def services_bound_to(conn: Connection, repository: str) -> list[ServiceRecord]:
    """Services whose GitHub evidence must come from ``repository`` (owner/name, any case)."""
    rows = conn.execute(select(services).where(services.c.github_repository == repository.lower()))
    return [ServiceRecord.of(r) for r in rows]


def bind_repository(conn: Connection, service_id: int, repository: str, repository_id: int) -> bool:
    """Bind a service to the GitHub repository of its first verified delivery: the name while none
    is configured, the id while none is recorded. True when this call bound something."""
    unbound = conn.execute(
        update(services)
        .where(services.c.id == service_id, services.c.github_repository.is_(None))
        .values(github_repository=repository.lower(), github_repository_id=repository_id)
    ).rowcount
    no_id = conn.execute(
        update(services)
        .where(
            services.c.id == service_id,
            services.c.github_repository == repository.lower(),
            services.c.github_repository_id.is_(None),
        )
        .values(github_repository_id=repository_id)
    ).rowcount
    return bool(unbound or no_id)


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
