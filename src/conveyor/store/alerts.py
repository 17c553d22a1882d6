"""Alerts Alertmanager sent to Conveyor (monitor/alertmanager.py): one row per alert instance,
known by its fingerprint (of its labels) and when it started firing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from conveyor.domain.clock import as_utc
from conveyor.store.tables import monitor_alerts


@dataclass(frozen=True)
class AlertInstance:
    """One alert of a notification, as Alertmanager describes it."""

    fingerprint: str
    status: str  # firing | resolved
    starts_at: datetime
    ends_at: datetime | None  # when it resolved (None while firing)
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    generator_url: str | None


@dataclass(frozen=True)
class AlertRecord:
    id: int
    fingerprint: str
    status: str
    starts_at: datetime
    ends_at: datetime | None
    alertname: str
    service: str
    environment: str
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str | None
    receiver: str
    reported_by: str
    received_at: datetime
    updated_at: datetime


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


def _record(row: Any) -> AlertRecord:
    return AlertRecord(
        id=row.id,
        fingerprint=row.fingerprint,
        status=row.status,
        starts_at=as_utc(row.starts_at),
        ends_at=as_utc(row.ends_at) if row.ends_at else None,
        alertname=row.alertname,
        service=row.service,
        environment=row.environment,
        labels=dict(row.labels),
        annotations=dict(row.annotations),
        generator_url=row.generator_url,
        receiver=row.receiver,
        reported_by=row.reported_by,
        received_at=as_utc(row.received_at),
        updated_at=as_utc(row.updated_at),
    )


def record_alerts(
    conn: Connection, alerts: Sequence[AlertInstance], receiver: str, reported_by: str, now: datetime
) -> tuple[int, int, int]:
    """Insert the alert instances not seen before, update the others; returns how many were new,
    how many resolved now, and how many were repeats (known, and still in the state they were).
    A resolved instance stays resolved: a late "firing" for it (a retried older notification)
    changes nothing."""
    new = resolved = repeated = 0
    for alert in alerts:
        starts_at = _utc(alert.starts_at)
        ends_at = _utc(alert.ends_at) if alert.ends_at else None
        key = (monitor_alerts.c.fingerprint == alert.fingerprint) & (monitor_alerts.c.starts_at == starts_at)
        existing = conn.execute(select(monitor_alerts.c.id, monitor_alerts.c.status).where(key)).first()
        values = {
            "labels": dict(alert.labels),
            "annotations": dict(alert.annotations),
            "generator_url": alert.generator_url,
            "receiver": receiver,
            "reported_by": reported_by,
            "updated_at": now,
        }
        if existing is None:
            conn.execute(
                insert(monitor_alerts).values(
                    fingerprint=alert.fingerprint,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    status=alert.status,
                    alertname=alert.labels.get("alertname", ""),
                    service=alert.labels.get("service", ""),
                    environment=alert.labels.get("environment", ""),
                    received_at=now,
                    **values,
                )
            )
            new += 1
        elif existing.status != "resolved":
            conn.execute(
                update(monitor_alerts)
                .where(monitor_alerts.c.id == existing.id)
                .values(status=alert.status, ends_at=ends_at, **values)
            )
            resolved += alert.status == "resolved"
            repeated += alert.status != "resolved"
        else:
            repeated += 1
    return new, resolved, repeated


def alerts_since(conn: Connection, service: str, environment: str, since: datetime) -> list[AlertRecord]:
    """Alerts of ``service`` in ``environment`` (by their labels) firing at some moment since
    ``since``: still firing, or resolved at or after it; oldest first."""
    rows = conn.execute(
        select(monitor_alerts)
        .where(
            monitor_alerts.c.service == service,
            monitor_alerts.c.environment == environment,
            or_(monitor_alerts.c.ends_at.is_(None), monitor_alerts.c.ends_at >= _utc(since)),
        )
        .order_by(monitor_alerts.c.starts_at, monitor_alerts.c.id)
    )
    return [_record(row) for row in rows]
