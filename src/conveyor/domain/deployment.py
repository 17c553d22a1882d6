"""Deployment states, the transitions between them, and step states. Pure: no I/O."""

from __future__ import annotations

from enum import StrEnum

from conveyor.errors import Conflict


class DeploymentState(StrEnum):
    PENDING = "pending"  # gates not yet passed
    QUEUED = "queued"  # waiting for the environment's lock
    RUNNING = "running"
    MONITORING = "monitoring"  # serving and being watched; the environment is still held
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset(
    {
        DeploymentState.SUCCEEDED,
        DeploymentState.FAILED,
        DeploymentState.ROLLED_BACK,
        DeploymentState.CANCELLED,
    }
)

_ENDS = frozenset(
    {DeploymentState.SUCCEEDED, DeploymentState.FAILED, DeploymentState.ROLLED_BACK, DeploymentState.CANCELLED}
)

# every allowed move; a new state is one line here (and the gateway, engine/transitions.py,
# refuses anything else)
_ALLOWED: dict[DeploymentState, frozenset[DeploymentState]] = {
    DeploymentState.PENDING: frozenset({DeploymentState.QUEUED, DeploymentState.CANCELLED, DeploymentState.FAILED}),
    DeploymentState.QUEUED: frozenset({DeploymentState.RUNNING, DeploymentState.CANCELLED, DeploymentState.FAILED}),
    DeploymentState.RUNNING: _ENDS | {DeploymentState.MONITORING},
    DeploymentState.MONITORING: _ENDS,
}

ALLOWED_MOVES: frozenset[tuple[DeploymentState, DeploymentState]] = frozenset(
    (current, new) for current, targets in _ALLOWED.items() for new in targets
)


def can_transition(current: DeploymentState, new: DeploymentState) -> bool:
    return new in _ALLOWED.get(current, frozenset())


def check_transition(current: DeploymentState, new: DeploymentState) -> None:
    """Raise Conflict when ``current -> new`` is not an allowed move."""
    if not can_transition(current, new):
        raise Conflict(
            f"a deployment cannot go from {current} to {new}",
            fix="it has already moved on; look at `conveyor status` for its current state",
        )


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    MONITORING = "monitoring"  # serving and being watched; the environment is still held
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class DeploymentKind(StrEnum):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    MIGRATE = "migrate"  # the migration alone (`conveyor migrate`): the serving release stays, no tag


STEP_ORDER = ("prepare", "tag", "migrate", "rollout", "smoke", "announce")
ROLLBACK_STEPS = ("prepare", "rollout", "smoke", "announce")
MIGRATE_STEPS = ("prepare", "migrate")
# rollback --with-database (docs/database.md): the process document's database rollback, in order
WITH_DATABASE_STEPS = ("prepare", "maintenance_on", "database", "rollout", "smoke", "maintenance_off", "announce")


def with_database_plan(*, smoke: bool) -> tuple[str, ...]:
    """The steps of a rollback that takes the database back too; smoke only when the environment
    has a smoke command."""
    return tuple(s for s in WITH_DATABASE_STEPS if smoke or s != "smoke")
