"""Typed rows the rest of Conveyor passes around, read from the app tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from conveyor.domain.clock import as_utc
from conveyor.domain.deployment import DeploymentKind, DeploymentState, StepState


def _utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


@dataclass(frozen=True)
class ServiceRecord:
    id: int
    name: str
    source: str
    repo_path: str
    config_text: str
    github_repository: str | None = None  # owner/name its GitHub evidence must come from
    github_repository_id: int | None = None  # recorded at the first verified delivery, or configured

    @classmethod
    def of(cls, row: Row[Any]) -> ServiceRecord:
        return cls(
            row.id,
            row.name,
            row.source,
            row.repo_path,
            row.config_text,
            row.github_repository,
            row.github_repository_id,
        )


@dataclass(frozen=True)
class ReleaseRecord:
    id: int
    service_id: int
    sha: str
    version: str
    tag: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Row[Any]) -> ReleaseRecord:
        return cls(row.id, row.service_id, row.sha, row.version, row.tag, as_utc(row.created_at))

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "sha": self.sha, "tag": self.tag}


@dataclass(frozen=True)
class StepRecord:
    name: str
    position: int
    state: StepState
    message: str | None
    output_tail: str | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: Row[Any]) -> StepRecord:
        return cls(
            row.name,
            row.position,
            StepState(row.state),
            row.message,
            row.output_tail,
            _utc(row.started_at),
            _utc(row.finished_at),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "message": self.message,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_ms": (
                round((self.finished_at - self.started_at).total_seconds() * 1000)
                if self.started_at and self.finished_at
                else None
            ),
        }


@dataclass(frozen=True)
class DeploymentRecord:
    id: str
    seq: int
    service_id: int
    service: str
    environment: str
    kind: DeploymentKind
    ref: str
    sha: str
    release_id: int | None
    previous_release_id: int | None
    state: DeploymentState
    actor: str
    trigger: str
    notes: str | None
    ticket: str | None
    reason: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    version: str | None = None
    previous_version: str | None = None
    gates: list[dict[str, Any]] | None = None
    emergency: bool = False
    when_open: bool = False
    maintenance: bool = False  # maintenance mode on during the migrate step (docs/database.md)
    with_database: bool = False  # a rollback that takes the database back too

    @classmethod
    def of(cls, row: Row[Any]) -> DeploymentRecord:
        m = row._mapping
        return cls(
            id=m["id"],
            seq=m["seq"],
            service_id=m["service_id"],
            service=m["service"],
            environment=m["environment"],
            kind=DeploymentKind(m["kind"]),
            ref=m["ref"],
            sha=m["sha"],
            release_id=m["release_id"],
            previous_release_id=m["previous_release_id"],
            state=DeploymentState(m["state"]),
            actor=m["actor"],
            trigger=m["trigger"],
            notes=m["notes"],
            ticket=m["ticket"],
            reason=m["reason"],
            cancel_requested=bool(m["cancel_requested"]),
            created_at=as_utc(m["created_at"]),
            started_at=_utc(m["started_at"]),
            finished_at=_utc(m["finished_at"]),
            version=m.get("version"),
            previous_version=m.get("previous_version"),
            gates=m.get("gates"),
            emergency=bool(m.get("emergency")),
            when_open=bool(m.get("when_open")),
            maintenance=bool(m.get("maintenance")),
            with_database=bool(m.get("with_database")),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seq": self.seq,
            "service": self.service,
            "environment": self.environment,
            "kind": self.kind.value,
            "ref": self.ref,
            "sha": self.sha,
            "version": self.version,
            "previous_version": self.previous_version,
            "state": self.state.value,
            "actor": self.actor,
            "trigger": self.trigger,
            "notes": self.notes,
            "ticket": self.ticket,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "gates": self.gates or [],
            "emergency": self.emergency,
            "when_open": self.when_open,
            "maintenance": self.maintenance,
            "with_database": self.with_database,
        }
