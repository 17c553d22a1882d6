"""docs/database.md in the store: each deployment's migration report, the acknowledgements of a
release's findings, and each run of a migrate command (its duration and the backup before it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from conveyor.domain.clock import as_utc
from conveyor.domain.migrations import Acknowledgement, MigrationReport
from conveyor.store.tables import migration_acks, migration_reports, migration_runs


@dataclass(frozen=True)
class MigrationRun:
    deployment_id: str
    environment: str
    sha: str
    release_id: int | None
    started_at: datetime
    seconds: float | None
    ok: bool | None
    maintenance: bool
    backup: str | None


def save_report(
    conn: Connection,
    *,
    deployment_id: str,
    service_id: int,
    environment: str,
    sha: str,
    report: MigrationReport,
    now: datetime,
) -> None:
    """Record (or replace, when linted again) the report of one deployment."""
    values = {"report": report.as_json(), "destructive": bool(report.destructive), "created_at": now}
    done = conn.execute(
        update(migration_reports).where(migration_reports.c.deployment_id == deployment_id).values(**values)
    )
    if done.rowcount == 0:
        conn.execute(
            insert(migration_reports).values(
                deployment_id=deployment_id, service_id=service_id, environment=environment, sha=sha, **values
            )
        )


def report_for(conn: Connection, deployment_id: str) -> MigrationReport | None:
    row = conn.execute(
        select(migration_reports.c.report).where(migration_reports.c.deployment_id == deployment_id)
    ).first()
    return MigrationReport.from_json(row.report) if row else None


def latest_report(
    conn: Connection, service_id: int, sha: str, environment: str | None = None
) -> MigrationReport | None:
    """The newest report of a commit (in one environment, or any)."""
    query = select(migration_reports.c.report).where(
        migration_reports.c.service_id == service_id, migration_reports.c.sha == sha
    )
    if environment is not None:
        query = query.where(migration_reports.c.environment == environment)
    row = conn.execute(query.order_by(migration_reports.c.created_at.desc()).limit(1)).first()
    return MigrationReport.from_json(row.report) if row else None


def acknowledge(
    conn: Connection, *, service_id: int, sha: str, user: str, reason: str, rules: list[str], now: datetime
) -> None:
    conn.execute(
        insert(migration_acks).values(service_id=service_id, sha=sha, user=user, reason=reason, rules=rules, at=now)
    )


def acknowledgements(conn: Connection, service_id: int, sha: str) -> tuple[Acknowledgement, ...]:
    rows = conn.execute(
        select(migration_acks)
        .where(migration_acks.c.service_id == service_id, migration_acks.c.sha == sha)
        .order_by(migration_acks.c.id)
    ).all()
    return tuple(Acknowledgement(r.user, r.reason, as_utc(r.at), tuple(r.rules)) for r in rows)


def start_run(
    conn: Connection,
    *,
    deployment_id: str,
    service_id: int,
    environment: str,
    sha: str,
    release_id: int | None,
    now: datetime,
    maintenance: bool,
    backup: str | None,
) -> None:
    """Record that a migrate command starts (idempotent: a step run again keeps the first start)."""
    found = conn.execute(select(migration_runs.c.deployment_id).where(migration_runs.c.deployment_id == deployment_id))
    if found.first() is None:
        conn.execute(
            insert(migration_runs).values(
                deployment_id=deployment_id,
                service_id=service_id,
                environment=environment,
                sha=sha,
                release_id=release_id,
                started_at=now,
                maintenance=maintenance,
                backup=backup,
            )
        )


def finish_run(conn: Connection, deployment_id: str, *, seconds: float, ok: bool) -> None:
    conn.execute(
        update(migration_runs).where(migration_runs.c.deployment_id == deployment_id).values(seconds=seconds, ok=ok)
    )


def _run(row: Any) -> MigrationRun:
    return MigrationRun(
        deployment_id=row.deployment_id,
        environment=row.environment,
        sha=row.sha,
        release_id=row.release_id,
        started_at=as_utc(row.started_at),
        seconds=row.seconds,
        ok=row.ok,
        maintenance=bool(row.maintenance),
        backup=row.backup,
    )


def run_for(conn: Connection, deployment_id: str) -> MigrationRun | None:
    row = conn.execute(select(migration_runs).where(migration_runs.c.deployment_id == deployment_id)).first()
    return _run(row) if row else None


def latest_run(conn: Connection, service_id: int, sha: str, environment: str) -> MigrationRun | None:
    """The newest finished, successful run of a commit's migrations in an environment (e.g. staging)."""
    row = conn.execute(
        select(migration_runs)
        .where(
            migration_runs.c.service_id == service_id,
            migration_runs.c.sha == sha,
            migration_runs.c.environment == environment,
            migration_runs.c.ok.is_(True),
        )
        .order_by(migration_runs.c.started_at.desc())
        .limit(1)
    ).first()
    return _run(row) if row else None


def runs_in(conn: Connection, service_id: int, environment: str) -> list[MigrationRun]:
    """Every successful migration run of an environment, oldest first: which migrations ran, per release."""
    rows = conn.execute(
        select(migration_runs)
        .where(
            migration_runs.c.service_id == service_id,
            migration_runs.c.environment == environment,
            migration_runs.c.ok.is_(True),
        )
        .order_by(migration_runs.c.started_at)
    ).all()
    return [_run(r) for r in rows]
