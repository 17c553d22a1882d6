"""The event stream's storage: record an event in the caller's transaction, read the stream
from a position, and keep each consumer's durable cursor.

Writers take the audit lock (``serialize(conn, "audit")``) before inserting, so on PostgreSQL an
event id is never committed after a higher one: a consumer that reads ``id > cursor`` misses
nothing. On SQLite write transactions are one at a time already.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from conveyor.domain.clock import as_utc
from conveyor.domain.events import Event, StoredEvent, from_payload
from conveyor.store.db import Database, serialize
from conveyor.store.tables import event_cursors, events


def record(conn: Connection, event: Event, at: datetime) -> int:
    """Append ``event`` in the caller's transaction; return its position in the stream."""
    serialize(conn, "audit")
    result = conn.execute(
        events.insert().values(
            at=as_utc(at),
            kind=event.kind,
            deployment_id=event.deployment_id,
            subject=event.subject[:255],
            payload=_plain(event.payload()),
        )
    )
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


def _plain(payload: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(payload, default=str)))


def read_after(
    conn: Connection, position: int, limit: int = 100, deployment_id: str | None = None
) -> list[StoredEvent]:
    """Events after ``position``, oldest first (optionally only one deployment's)."""
    query = select(events).where(events.c.id > position).order_by(events.c.id).limit(limit)
    if deployment_id is not None:
        query = query.where(events.c.deployment_id == deployment_id)
    return [StoredEvent(r.id, r.at, from_payload(r.kind, dict(r.payload))) for r in conn.execute(query)]


def head(conn: Connection) -> int:
    """The position of the newest event (0 for an empty stream)."""
    return int(conn.execute(select(events.c.id).order_by(events.c.id.desc()).limit(1)).scalar() or 0)


def cursor(conn: Connection, name: str, *, lock: bool = False) -> int:
    """Consumer ``name``'s position (0 before its first event); ``lock`` holds its row until the
    transaction ends, so two instances of one consumer never handle the same event together."""
    query = select(event_cursors.c.position).where(event_cursors.c.name == name)
    return int(conn.execute(query.with_for_update() if lock else query).scalar() or 0)


def advance(conn: Connection, name: str, position: int, now: datetime) -> None:
    """Move consumer ``name``'s cursor to ``position`` (in the caller's transaction)."""
    moved = conn.execute(
        update(event_cursors).where(event_cursors.c.name == name).values(position=position, updated_at=now)
    )
    if moved.rowcount == 0:
        conn.execute(event_cursors.insert().values(name=name, position=position, updated_at=now))


def consume(
    db: Database,
    name: str,
    handle: Callable[[Connection, StoredEvent], None],
    now: Callable[[], datetime],
    *,
    batch: int = 100,
) -> int:
    """Hand every event after consumer ``name``'s cursor to ``handle``, oldest first, one
    transaction per event: ``handle``'s own writes and the cursor's move commit together, so a
    consumer that keeps its effects in the database sees each event exactly once; one with effects
    outside it (a message sent) sees each at least once, never out of order. Returns how many
    events were handled."""
    with db.begin() as conn:
        if conn.execute(select(event_cursors.c.name).where(event_cursors.c.name == name)).first() is None:
            advance(conn, name, 0, now())
    handled = 0
    while True:
        with db.read() as conn:
            position = cursor(conn, name)
            pending = read_after(conn, position, batch)
        if not pending:
            return handled
        for stored in pending:
            with db.begin() as conn:
                if cursor(conn, name, lock=True) >= stored.position:  # another instance of this consumer got it
                    continue
                handle(conn, stored)
                advance(conn, name, stored.position, now())
            handled += 1
