"""The one place a deployment changes state.

``transition`` checks the move against the domain's allowed transitions, sets the timestamps,
settles the steps that will not run, appends the audit entry and records the ``DeploymentMoved``
event, all in the caller's transaction: a crash leaves either all of it or none of it.

``expect`` is the caller's precondition, the states it means to move the deployment from. When
the deployment has already moved on (another request cancelled it, a restarted workflow finds it
finished) nothing happens and ``transition`` returns False: that is a race, not a bug. A move the
domain does not allow from a state the caller expected is a bug, and raises ``IllegalTransition``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from conveyor.audit import log as audit
from conveyor.domain.deployment import DeploymentState, StepState, can_transition
from conveyor.domain.events import DeploymentMoved, GatesChanged, StepFinished, StepStarted
from conveyor.domain.evidence import GateResult
from conveyor.store import deployments as store
from conveyor.store import events
from conveyor.store.records import DeploymentRecord
from conveyor.store.tables import deployments


class IllegalTransition(RuntimeError):
    """A programming error: code asked for a move the domain does not allow."""

    def __init__(self, deployment_id: str, current: DeploymentState, to: DeploymentState) -> None:
        super().__init__(f"deployment {deployment_id}: {current} -> {to} is not an allowed transition")
        self.current = current
        self.to = to


def transition(
    conn: Connection,
    deployment_id: str,
    to: DeploymentState,
    *,
    now: datetime,
    actor: str = "conveyor",
    reason: str | None = None,
    expect: Iterable[DeploymentState] | None = None,
    action: str | None = None,
    details: dict[str, Any] | None = None,
    steps: StepState | None = None,
    **fields: Any,
) -> bool:
    """Move ``deployment_id`` to ``to`` if it is in one of ``expect`` (default: any state the
    domain allows the move from). Returns True if it moved.

    ``action`` names the audit entry (default ``deployment.<to>``); ``details`` adds to it;
    ``steps`` is what the steps that did not run become when the deployment ends (default:
    cancelled for a cancelled deployment, skipped otherwise); ``fields`` are other columns set
    with the move (e.g. the release it runs)."""
    current = DeploymentState(
        conn.execute(
            select(deployments.c.state).where(deployments.c.id == deployment_id).with_for_update()
        ).scalar_one()
    )
    wanted = frozenset(expect) if expect is not None else None
    if wanted is not None and current not in wanted:
        return False
    if not can_transition(current, to):
        if wanted is None and current.finished:
            return False  # already ended: whoever ended it won the race
        raise IllegalTransition(deployment_id, current, to)
    changes: dict[str, Any] = {"state": to.value, **fields}
    if reason is not None:
        changes["reason"] = reason
    if to == DeploymentState.RUNNING:
        changes["started_at"] = now
    if to.finished:
        changes["finished_at"] = now
    moved = conn.execute(
        update(deployments)
        .where(deployments.c.id == deployment_id, deployments.c.state == current.value)
        .values(**changes)
    )
    if moved.rowcount != 1:
        return False
    if to.finished:
        default = StepState.CANCELLED if to == DeploymentState.CANCELLED else StepState.SKIPPED
        store.skip_pending_steps(conn, deployment_id, steps or default)
    d = store.get_deployment(conn, deployment_id)
    audit.append(
        conn,
        at=now,
        actor=actor,
        action=action or f"deployment.{to.value}",
        subject=deployment_id,
        details={**({"reason": reason} if reason is not None else {}), **(details or {})},
        event=DeploymentMoved(
            subject=deployment_id,
            service=d.service,
            environment=d.environment,
            from_state=current.value,
            to_state=to.value,
            actor=actor,
            reason=reason,
        ),
    )
    return True


def step_started(conn: Connection, deployment_id: str, name: str, *, now: datetime) -> None:
    """A step begins (again, after a crash: a second ``StepStarted`` is a real second start)."""
    store.update_step(conn, deployment_id, name, state=StepState.RUNNING, started_at=now)
    events.record(conn, StepStarted(subject=deployment_id, step=name), now)


def step_finished(
    conn: Connection, deployment_id: str, name: str, state: StepState, *, now: datetime, message: str, output: str
) -> None:
    store.update_step(
        conn,
        deployment_id,
        name,
        state=state,
        finished_at=now,
        message=message[:4000],
        output_tail=output or None,
    )
    events.record(conn, StepFinished(subject=deployment_id, step=name, state=state.value, message=message[:500]), now)


def gates_evaluated(conn: Connection, d: DeploymentRecord, results: Sequence[GateResult], *, now: datetime) -> None:
    """Keep a pending deployment's latest gate results; a ``GatesChanged`` event when which gates
    pass is not what it was (the first evaluation included)."""
    store.set_fields(conn, d.id, gates=[r.as_json() for r in results])
    before = {(g["gate"], bool(g["passed"])) for g in d.gates or []} if d.gates is not None else None
    after = {(r.gate, r.passed) for r in results}
    if before != after:
        passing = tuple(r.gate for r in results if r.passed)
        failing = tuple(r.gate for r in results if not r.passed)
        events.record(conn, GatesChanged(subject=d.id, passing=passing, failing=failing), now)
