"""The monitoring window of a deployment (``monitorings``) and its samples (``monitor_samples``).

A sample is stored once per (deployment, seq): ``add_sample`` inserts only when the row is not
there yet and always answers the stored row, so a DBOS step that runs again after a crash reads the
numbers it stored the first time instead of storing them twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.domain.monitoring import Window
from conveyor.store.tables import monitor_samples, monitorings


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Monitoring:
    deployment_id: str
    started_at: datetime
    switched_at: datetime
    seconds: float
    interval: float
    on_breach: str
    judge_from: int
    verdict: str | None
    outcome: str | None
    decision: str | None
    decided_by: str | None
    decision_reason: str | None
    breach: dict[str, Any] | None
    alerted: list[dict[str, Any]] | None
    flags: list[dict[str, Any]] | None
    killed_flags: list[str] | None
    ended_at: datetime | None

    @property
    def samples_total(self) -> int:
        """How many intervals the window has (the last one may be shorter than ``interval``)."""
        whole, rest = divmod(self.seconds, self.interval)
        return int(whole) + (1 if rest > 1e-9 else 0)

    def bounds(self, seq: int) -> tuple[datetime, datetime]:
        """[since, until) of sample ``seq``: start + seq*interval, clipped to the window's end."""
        since = self.started_at + timedelta(seconds=seq * self.interval)
        until = min(since + timedelta(seconds=self.interval), self.started_at + timedelta(seconds=self.seconds))
        return since, until

    @property
    def ends_at(self) -> datetime:
        return self.started_at + timedelta(seconds=self.seconds)

    def as_json(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "switched_at": self.switched_at.isoformat(),
            "for_seconds": self.seconds,
            "interval_seconds": self.interval,
            "on_breach": self.on_breach,
            "verdict": self.verdict,
            "outcome": self.outcome,
            "decision": self.decision,
            "decided_by": self.decided_by,
            "decision_reason": self.decision_reason,
            "breach": self.breach,
            "alerted": self.alerted or [],
            "flags": self.flags or [],
            "killed_flags": self.killed_flags or [],
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
        }


@dataclass(frozen=True)
class Sample:
    seq: int
    since: datetime
    until: datetime
    window: Window
    verdict: str
    findings: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        w = self.window
        return {
            "seq": self.seq,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "requests": w.requests,
            "errors": w.errors,
            "failed": w.failed,
            "latency_buckets": list(w.latency_buckets),
            "verdict": self.verdict,
            "findings": self.findings,
        }


def _monitoring(row: Any) -> Monitoring:
    m = row._mapping
    return Monitoring(
        deployment_id=m["deployment_id"],
        started_at=_utc(m["started_at"]),  # type: ignore[arg-type]
        switched_at=_utc(m["switched_at"]),  # type: ignore[arg-type]
        seconds=float(m["seconds"]),
        interval=float(m["interval"]),
        on_breach=m["on_breach"],
        judge_from=int(m["judge_from"]),
        verdict=m["verdict"],
        outcome=m["outcome"],
        decision=m["decision"],
        decided_by=m["decided_by"],
        decision_reason=m["decision_reason"],
        breach=m["breach"],
        alerted=m["alerted"],
        flags=m["flags"],
        killed_flags=m["killed_flags"],
        ended_at=_utc(m["ended_at"]),
    )


def _sample(row: Any) -> Sample:
    m = row._mapping
    window = Window(
        requests=m["requests"],
        errors=m["errors"],
        failed=m["failed"],
        latency_buckets=tuple(m["latency_buckets"]),
        seconds=(_utc(m["until"]) - _utc(m["since"])).total_seconds(),  # type: ignore[operator]
    )
    return Sample(m["seq"], _utc(m["since"]), _utc(m["until"]), window, m["verdict"], list(m["findings"]))  # type: ignore[arg-type]


def start(
    conn: Connection,
    deployment_id: str,
    *,
    started_at: datetime,
    switched_at: datetime,
    seconds: float,
    interval: float,
    on_breach: str,
) -> Monitoring:
    """The deployment's window; created once (a second call answers the first one's row)."""
    found = get(conn, deployment_id)
    if found is not None:
        return found
    conn.execute(
        insert(monitorings).values(
            deployment_id=deployment_id,
            started_at=started_at,
            switched_at=switched_at,
            seconds=seconds,
            interval=interval,
            on_breach=on_breach,
            judge_from=0,
        )
    )
    found = get(conn, deployment_id)
    assert found is not None
    return found


def get(conn: Connection, deployment_id: str) -> Monitoring | None:
    row = conn.execute(select(monitorings).where(monitorings.c.deployment_id == deployment_id)).first()
    return _monitoring(row) if row is not None else None


def update_monitoring(conn: Connection, deployment_id: str, **values: Any) -> None:
    conn.execute(update(monitorings).where(monitorings.c.deployment_id == deployment_id).values(**values))


def request_decision(conn: Connection, deployment_id: str, decision: str, actor: str, reason: str) -> bool:
    """Record a person's decision for the loop to carry out; False when one is already recorded."""
    moved = conn.execute(
        update(monitorings)
        .where(monitorings.c.deployment_id == deployment_id, monitorings.c.decision.is_(None))
        .values(decision=decision, decided_by=actor, decision_reason=reason)
    )
    return moved.rowcount == 1


def add_sample(
    conn: Connection,
    deployment_id: str,
    seq: int,
    since: datetime,
    until: datetime,
    window: Window,
    verdict: str,
    findings: list[dict[str, Any]],
    now: datetime,
) -> Sample:
    """Store sample ``seq`` unless it is stored already; answer the stored one either way."""
    existing = get_sample(conn, deployment_id, seq)
    if existing is not None:
        return existing
    try:
        with conn.begin_nested():
            conn.execute(
                insert(monitor_samples).values(
                    deployment_id=deployment_id,
                    seq=seq,
                    since=since,
                    until=until,
                    requests=window.requests,
                    errors=window.errors,
                    failed=window.failed,
                    latency_buckets=list(window.latency_buckets),
                    verdict=verdict,
                    findings=findings,
                    recorded_at=now,
                )
            )
    except IntegrityError:
        pass  # another run of the same step stored it first
    stored = get_sample(conn, deployment_id, seq)
    assert stored is not None
    return stored


def get_sample(conn: Connection, deployment_id: str, seq: int) -> Sample | None:
    row = conn.execute(
        select(monitor_samples).where(monitor_samples.c.deployment_id == deployment_id, monitor_samples.c.seq == seq)
    ).first()
    return _sample(row) if row is not None else None


def samples(conn: Connection, deployment_id: str) -> list[Sample]:
    rows = conn.execute(
        select(monitor_samples).where(monitor_samples.c.deployment_id == deployment_id).order_by(monitor_samples.c.seq)
    )
    return [_sample(r) for r in rows]


def count_samples(conn: Connection, deployment_id: str) -> int:
    return len(samples(conn, deployment_id))
