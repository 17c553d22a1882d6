"""What gates look at and what they answer: reviews, checks, approvals, checklist ticks, runs
in other environments, and each gate's result. Plain values: the engine assembles them from the
store (``engine/evidence.py``), gates (``gates/``) judge them, and the store (``store/evidence.py``)
builds them from rows. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from conveyor.domain.calendar import Freeze
from conveyor.domain.migrations import Acknowledgement, MigrationReport


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)
    waitable: bool = True  # False when waiting cannot make it pass (e.g. the requester's role)

    def as_json(self) -> dict[str, Any]:
        return {"gate": self.gate, "passed": self.passed, "reason": self.reason, "details": dict(self.details)}


@dataclass(frozen=True)
class Review:
    reviewer: str
    author: str
    state: str  # approved | changes_requested | commented | dismissed
    at: datetime


@dataclass(frozen=True)
class Check:
    name: str
    state: str  # success | failure | pending
    at: datetime
    url: str | None = None


@dataclass(frozen=True)
class Approval:
    user: str
    roles: tuple[str, ...]
    at: datetime
    comment: str | None = None


@dataclass(frozen=True)
class Tick:
    item: str
    user: str
    at: datetime


@dataclass(frozen=True)
class EnvironmentRun:
    """A finished deployment of the same commit in another environment."""

    environment: str
    state: str
    smoke: str  # state of its smoke step: succeeded | skipped | failed | absent
    finished_at: datetime | None


@dataclass(frozen=True)
class Verification:
    environment: str
    user: str
    at: datetime


@dataclass(frozen=True)
class MigrationsEvidence:
    """What the ``migrations`` gate judges (docs/gates.md): the lint report of the deployment (for
    ``why``, the newest of the same commit; None when none was made yet), the acknowledgements of
    the commit, whether the deployment asked for maintenance mode, and how long the same commit's
    last successful migration took in the verifying environment (None: it has not run there)."""

    report: MigrationReport | None
    acknowledgements: tuple[Acknowledgement, ...] = ()
    maintenance: bool = False
    staging_seconds: float | None = None


@dataclass(frozen=True)
class Evidence:
    environment: str
    sha: str
    ref: str
    requester: str
    requester_roles: tuple[str, ...]
    now: datetime
    deployment_id: str | None = None  # None when asking `why` before any request
    hotfix: bool = False
    reviews: tuple[Review, ...] = ()
    checks: Mapping[str, Check] = field(default_factory=dict)  # the latest report per check name
    runs: tuple[EnvironmentRun, ...] = ()
    verifications: tuple[Verification, ...] = ()
    approvals: tuple[Approval, ...] = ()
    ticks: Mapping[str, Tick] = field(default_factory=dict)
    freezes: tuple[Freeze, ...] = ()  # one-off freezes of this environment
    emergency: bool = False  # asks to bypass the schedule (needs an emergency approval)
    when_open: bool = False  # may wait for the next opening of the schedule
    migrations: MigrationsEvidence | None = None  # None where the environment lints no migrations
