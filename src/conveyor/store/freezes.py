"""Queries for one-off deploy freezes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from conveyor.domain.clock import as_utc
from conveyor.errors import Conflict, NotFound
from conveyor.store.tables import freezes


@dataclass(frozen=True)
class FreezeRecord:
    id: int
    environment: str
    starts_at: datetime
    ends_at: datetime | None
    reason: str
    created_by: str
    lifted_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "environment": self.environment,
            "from": self.starts_at.isoformat(),
            "until": self.ends_at.isoformat() if self.ends_at else None,
            "reason": self.reason,
            "created_by": self.created_by,
            "lifted_at": self.lifted_at.isoformat() if self.lifted_at else None,
        }


def _record(row: Any) -> FreezeRecord:
    return FreezeRecord(
        row.id,
        row.environment,
        as_utc(row.starts_at),
        as_utc(row.ends_at) if row.ends_at else None,
        row.reason,
        row.created_by,
        as_utc(row.lifted_at) if row.lifted_at else None,
    )


def add_freeze(
    conn: Connection,
    service_id: int,
    environment: str,
    starts_at: datetime,
    ends_at: datetime | None,
    reason: str,
    by: str,
    now: datetime,
) -> FreezeRecord:
    result = conn.execute(
        freezes.insert().values(
            service_id=service_id,
            environment=environment,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason,
            created_by=by,
            created_at=now,
        )
    )
    return get_freeze(conn, int(result.inserted_primary_key[0]))  # type: ignore[index]


def get_freeze(conn: Connection, freeze_id: int) -> FreezeRecord:
    row = conn.execute(select(freezes).where(freezes.c.id == freeze_id)).first()
    if row is None:
        raise NotFound(f"no freeze with id {freeze_id}", fix="list them with `conveyor freeze list ENV`")
    return _record(row)


def active_freezes(conn: Connection, service_id: int, environment: str) -> list[FreezeRecord]:
    """Freezes not lifted (past ones included: the calendar decides which cover an instant)."""
    rows = conn.execute(
        select(freezes)
        .where(freezes.c.service_id == service_id, freezes.c.environment == environment, freezes.c.lifted_at.is_(None))
        .order_by(freezes.c.starts_at)
    )
    return [_record(r) for r in rows]


def lift_freeze(conn: Connection, freeze_id: int, by: str, now: datetime) -> FreezeRecord:
    found = get_freeze(conn, freeze_id)
    if found.lifted_at is not None:
        raise Conflict(f"freeze {freeze_id} was already lifted")
    conn.execute(update(freezes).where(freezes.c.id == freeze_id).values(lifted_at=now, lifted_by=by))
    return get_freeze(conn, freeze_id)
