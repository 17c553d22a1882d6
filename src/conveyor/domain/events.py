"""Domain events: what happened, as typed values. Pure: no I/O.

Every change Conveyor makes is recorded as one of these in the same transaction as the change
(``store/events.py``), in one ordered stream that anything can follow from a durable cursor:
notifiers, the dashboard's live updates, the timeline, webhooks out. An event names the
deployment it belongs to, if any, so a consumer can follow one deployment in order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    """Base of every event. ``kind`` names the type on the wire and in the database."""

    kind: ClassVar[str] = "event"
    subject: str  # what it is about: a deployment id, service/environment, a flag, a user

    @property
    def deployment_id(self) -> str | None:
        return None

    def payload(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class DeploymentMoved(Event):
    """A deployment changed state (through the transition gateway, ``engine/transitions.py``)."""

    kind: ClassVar[str] = "deployment.moved"
    service: str
    environment: str
    from_state: str
    to_state: str
    actor: str
    reason: str | None = None

    @property
    def deployment_id(self) -> str | None:
        return self.subject


@dataclass(frozen=True)
class StepStarted(Event):
    kind: ClassVar[str] = "step.started"
    step: str

    @property
    def deployment_id(self) -> str | None:
        return self.subject


@dataclass(frozen=True)
class StepFinished(Event):
    kind: ClassVar[str] = "step.finished"
    step: str
    state: str
    message: str = ""

    @property
    def deployment_id(self) -> str | None:
        return self.subject


@dataclass(frozen=True)
class GatesChanged(Event):
    """A pending deployment's gate results changed (one passed, one stopped passing)."""

    kind: ClassVar[str] = "gates.changed"
    passing: tuple[str, ...]
    failing: tuple[str, ...]

    @property
    def deployment_id(self) -> str | None:
        return self.subject


@dataclass(frozen=True)
class ApprovalRecorded(Event):
    kind: ClassVar[str] = "approval.recorded"
    actor: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def deployment_id(self) -> str | None:
        return self.subject


@dataclass(frozen=True)
class FlagChanged(Event):
    """A flag was created, changed, deleted, or its SDK keys changed (``action`` says which)."""

    kind: ClassVar[str] = "flag.changed"
    action: str
    actor: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class MaintenanceToggled(Event):
    kind: ClassVar[str] = "maintenance.toggled"
    actor: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Recorded(Event):
    """Any other audited action (users, tokens, services, freezes, evidence): the audit entry's
    action, actor and details, so the stream carries every change."""

    kind: ClassVar[str] = "recorded"
    action: str
    actor: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


KINDS: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        DeploymentMoved,
        StepStarted,
        StepFinished,
        GatesChanged,
        ApprovalRecorded,
        FlagChanged,
        MaintenanceToggled,
        Recorded,
    )
}


def from_payload(kind: str, payload: dict[str, Any]) -> Event:
    """The typed event back from what was stored; an unknown kind (from a newer version) is kept
    as ``Recorded`` so an older consumer can skip it without stopping."""
    cls = KINDS.get(kind)
    if cls is None:
        return Recorded(subject=str(payload.get("subject", "")), action=kind, actor="", details=payload)
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in payload.items() if k in names}
    for name in ("passing", "failing"):
        if name in values:
            values[name] = tuple(values[name])
    return cls(**values)


def from_audit(action: str, actor: str, subject: str, details: dict[str, Any]) -> Event | None:
    """The event an audit entry stands for, when its writer did not name one. Deployment state
    changes are recorded by the transition gateway itself, so their audit entries map to none."""
    if action in _MOVES:
        return None
    if action == "deployment.approved":
        return ApprovalRecorded(subject=subject, actor=actor, details=details)
    if action.startswith("flag."):
        return FlagChanged(subject=subject, action=action, actor=actor, details=details)
    if action == "environment.maintenance":
        return MaintenanceToggled(subject=subject, actor=actor, details=details)
    return Recorded(subject=subject, action=action, actor=actor, details=details)


# the audit actions of a state change: the gateway records a DeploymentMoved for each
_MOVES = frozenset(
    {
        "deployment.gates_passed",
        "deployment.started",
        "deployment.succeeded",
        "deployment.failed",
        "deployment.rolled_back",
        "deployment.cancelled",
        "deployment.superseded",
        "deployment.expired",
        "deployment.monitoring",
    }
)


@dataclass(frozen=True)
class StoredEvent:
    """An event as a consumer reads it: its place in the stream and when it was recorded."""

    position: int
    at: datetime
    event: Event
