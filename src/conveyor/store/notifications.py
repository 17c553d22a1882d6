"""The notifications outbox: rows the event consumer writes (``notify/plan.py``) and the sender
delivers (``notify/host.py``), one destination at a time in id order; and each destination's
per-deployment state (the Slack message it updates, the GitHub deployment it reports to)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from conveyor.domain.clock import as_utc
from conveyor.store.tables import notification_threads, notifications

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class NotificationRecord:
    id: int
    position: int
    deployment_id: str | None
    destination: str
    notifier: str
    event: str
    config: dict[str, Any]
    context: dict[str, Any]
    state: str
    attempts: int
    next_at: datetime
    text: str | None
    last_error: str | None  # the last failed attempt's error (a delivered message may have one from before)
    created_at: datetime
    delivered_at: datetime | None
    outcome: str | None  # once delivered: what the receiver did

    @property
    def shown_outcome(self) -> str | None:
        """What to show of it: what the receiver did once delivered, else the last error."""
        return self.outcome if self.state == DELIVERED else self.last_error


def delivery_json(n: NotificationRecord) -> dict[str, Any]:
    """What the API and `conveyor logs` show of one delivery."""
    return {
        "id": n.id,
        "notifier": n.notifier,
        "destination": n.destination,
        "event": n.event,
        "state": n.state,
        "attempts": n.attempts,
        "outcome": n.shown_outcome,
        "created_at": n.created_at.isoformat(),
        "delivered_at": n.delivered_at.isoformat() if n.delivered_at else None,
    }


def _record(row: Any) -> NotificationRecord:
    return NotificationRecord(
        row.id,
        row.position,
        row.deployment_id,
        row.destination,
        row.notifier,
        row.event,
        dict(row.config),
        dict(row.context),
        row.state,
        row.attempts,
        as_utc(row.next_at),
        row.text,
        row.last_error,
        as_utc(row.created_at),
        as_utc(row.delivered_at) if row.delivered_at else None,
        row.outcome,
    )


def add(
    conn: Connection,
    *,
    position: int,
    deployment_id: str | None,
    destination: str,
    notifier: str,
    event: str,
    config: dict[str, Any],
    context: dict[str, Any],
    now: datetime,
) -> None:
    conn.execute(
        notifications.insert().values(
            position=position,
            deployment_id=deployment_id,
            destination=destination[:255],
            notifier=notifier,
            event=event,
            config=config,
            context=context,
            state=PENDING,
            attempts=0,
            next_at=now,
            created_at=now,
        )
    )


def exists(conn: Connection, deployment_id: str, destination: str, event: str) -> bool:
    query = select(notifications.c.id).where(
        notifications.c.deployment_id == deployment_id,
        notifications.c.destination == destination,
        notifications.c.event == event,
    )
    return conn.execute(query.limit(1)).first() is not None


def due(conn: Connection, now: datetime, busy: set[str], limit: int = 16) -> list[NotificationRecord]:
    """The oldest pending delivery of each destination not in ``busy``, if it is due and not held
    by a sender: later ones of a destination wait for it, so each destination gets its messages
    in order."""
    heads = (
        select(func.min(notifications.c.id).label("id"))
        .where(notifications.c.state == PENDING)
        .group_by(notifications.c.destination)
        .subquery()
    )
    query = (
        select(notifications)
        .join(heads, heads.c.id == notifications.c.id)
        .where(
            notifications.c.next_at <= now,
            or_(notifications.c.locked_until.is_(None), notifications.c.locked_until < now),
        )
        .order_by(notifications.c.id)
        .limit(limit + len(busy))
    )
    return [r for r in map(_record, conn.execute(query)) if r.destination not in busy][:limit]


def claim(conn: Connection, notification_id: int, now: datetime, hold: float) -> bool:
    """Hold it for ``hold`` seconds (another server's sender leaves it alone meanwhile)."""
    moved = conn.execute(
        update(notifications)
        .where(
            notifications.c.id == notification_id,
            notifications.c.state == PENDING,
            or_(notifications.c.locked_until.is_(None), notifications.c.locked_until < now),
        )
        .values(locked_until=now + timedelta(seconds=hold))
    )
    return moved.rowcount == 1


def delivered(conn: Connection, notification_id: int, now: datetime, text: str, outcome: str | None) -> None:
    """Sent: ``outcome`` is what the receiver did (``last_error`` keeps any earlier attempt's error)."""
    conn.execute(
        update(notifications)
        .where(notifications.c.id == notification_id)
        .values(
            state=DELIVERED,
            attempts=notifications.c.attempts + 1,
            delivered_at=now,
            locked_until=None,
            text=text,
            outcome=outcome,
        )
    )


def attempt_failed(conn: Connection, notification_id: int, *, text: str, error: str, retry_at: datetime | None) -> None:
    """One attempt failed: try again at ``retry_at``, or (None) give up."""
    values: dict[str, Any] = {
        "attempts": notifications.c.attempts + 1,
        "locked_until": None,
        "text": text,
        "last_error": error[:2000],
    }
    if retry_at is None:
        values["state"] = FAILED
    else:
        values["next_at"] = retry_at
    conn.execute(update(notifications).where(notifications.c.id == notification_id).values(**values))


def for_deployment(conn: Connection, deployment_id: str) -> list[NotificationRecord]:
    query = select(notifications).where(notifications.c.deployment_id == deployment_id).order_by(notifications.c.id)
    return [_record(r) for r in conn.execute(query)]


def pending_count(conn: Connection) -> int:
    query = select(func.count()).select_from(notifications).where(notifications.c.state == PENDING)
    return int(conn.execute(query).scalar() or 0)


def thread(conn: Connection, destination: str, deployment_id: str) -> dict[str, Any] | None:
    query = select(notification_threads.c.ref).where(
        and_(notification_threads.c.destination == destination, notification_threads.c.deployment_id == deployment_id)
    )
    ref = conn.execute(query).scalar()
    return dict(ref) if ref is not None else None


def keep_thread(conn: Connection, destination: str, deployment_id: str, ref: dict[str, Any], now: datetime) -> None:
    moved = conn.execute(
        update(notification_threads)
        .where(notification_threads.c.destination == destination, notification_threads.c.deployment_id == deployment_id)
        .values(ref=ref)
    )
    if moved.rowcount == 0:
        conn.execute(
            notification_threads.insert().values(
                destination=destination, deployment_id=deployment_id, ref=ref, created_at=now
            )
        )
