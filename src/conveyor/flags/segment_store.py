"""Queries for segments: Unleash's shared constraint sets, one service's, named by id from strategies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.domain.clock import as_utc
from conveyor.errors import Conflict, NotFound
from conveyor.flags.model import Segment, dump
from conveyor.store.tables import flag_segments, services


@dataclass(frozen=True)
class SegmentRecord:
    id: int
    service_id: int
    service: str
    segment: Segment
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime

    @property
    def name(self) -> str:
        return self.segment.name

    @classmethod
    def of(cls, row: Row[Any]) -> SegmentRecord:
        segment = Segment.model_validate(
            {"name": row.name, "description": row.description, "constraints": row.constraints}
        )
        return cls(
            row.id,
            row.service_id,
            row.service,
            segment,
            row.created_by,
            as_utc(row.created_at),
            row.updated_by,
            as_utc(row.updated_at),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            **dump(self.segment),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_by": self.updated_by,
            "updated_at": self.updated_at.isoformat(),
        }

    def ruleset_entry(self) -> dict[str, Any]:
        """The segment as the ruleset carries it (docs/flags-ruleset.md)."""
        return {"name": self.name, "constraints": dump(self.segment)["constraints"]}


_COLUMNS = (flag_segments, services.c.name.label("service"))


def _query() -> Any:
    return select(*_COLUMNS).join(services, services.c.id == flag_segments.c.service_id)


def list_segments(conn: Connection, service_id: int | None = None) -> list[SegmentRecord]:
    query = _query()
    if service_id is not None:
        query = query.where(flag_segments.c.service_id == service_id)
    return [SegmentRecord.of(r) for r in conn.execute(query.order_by(services.c.name, flag_segments.c.name))]


def find_segment(conn: Connection, name: str, service_id: int | None, service: str | None) -> SegmentRecord:
    """The segment ``name`` of the service, or of the only service that has one by that name."""
    query = _query().where(flag_segments.c.name == name)
    if service_id is not None:
        query = query.where(flag_segments.c.service_id == service_id)
    found = [SegmentRecord.of(r) for r in conn.execute(query.order_by(services.c.name))]
    if not found:
        where = f" in service {service!r}" if service else ""
        raise NotFound(f"no segment {name!r}{where}", fix="list them with `conveyor flags segment list`")
    if len(found) > 1:
        names = ", ".join(s.service for s in found)
        raise Conflict(f"more than one service has a segment {name!r} ({names}); which one?", fix="pass --service")
    return found[0]


def get_segment(conn: Connection, segment_id: int) -> SegmentRecord:
    row = conn.execute(_query().where(flag_segments.c.id == segment_id)).first()
    if row is None:
        raise NotFound("the segment was deleted meanwhile", fix="list them with `conveyor flags segment list`")
    return SegmentRecord.of(row)


def _values(segment: Segment) -> dict[str, Any]:
    data = dump(segment)
    return {"name": data["name"], "description": data["description"], "constraints": data["constraints"]}


def insert_segment(conn: Connection, service_id: int, service: str, segment: Segment, actor: str, now: datetime) -> int:
    try:
        with conn.begin_nested():
            result = conn.execute(
                flag_segments.insert().values(
                    service_id=service_id,
                    created_by=actor,
                    created_at=now,
                    updated_by=actor,
                    updated_at=now,
                    **_values(segment),
                )
            )
    except IntegrityError as exc:
        raise Conflict(f"service {service!r} already has a segment {segment.name!r}", fix="pick another name") from exc
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def update_segment(conn: Connection, record: SegmentRecord, segment: Segment, actor: str, now: datetime) -> None:
    try:
        with conn.begin_nested():
            conn.execute(
                update(flag_segments)
                .where(flag_segments.c.id == record.id)
                .values(updated_by=actor, updated_at=now, **_values(segment))
            )
    except IntegrityError as exc:
        raise Conflict(
            f"service {record.service!r} already has a segment {segment.name!r}", fix="pick another name"
        ) from exc


def delete_segment(conn: Connection, segment_id: int) -> None:
    conn.execute(delete(flag_segments).where(flag_segments.c.id == segment_id))


def ruleset_segments(conn: Connection, service_id: int) -> dict[str, Any]:
    """Every segment of the service as the ruleset carries them, by id (as text)."""
    return {str(s.id): s.ruleset_entry() for s in list_segments(conn, service_id)}
