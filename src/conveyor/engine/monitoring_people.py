"""A person ends monitoring early: "accept now" (-> succeeded) or "roll back now" (-> rolled back).

Release managers and admins may, with a reason; anyone else is refused (audited). The decision is
stored with the window and audited in one transaction, then the deployment's loop is woken; it
carries the decision out in its next step, so a decision made while the server restarts is not lost.
"""

from __future__ import annotations

import time
from typing import Literal

from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth.policy import Decision
from conveyor.domain.deployment import DeploymentState
from conveyor.engine.monitoring import wake
from conveyor.errors import Conflict, InvalidInput
from conveyor.runtime import Runtime
from conveyor.store import deployments as store
from conveyor.store import monitor_samples as samples
from conveyor.store.records import DeploymentRecord

MAY_DECIDE = ("release_manager", "admin")
Choice = Literal["accept", "rollback"]
WORDS = {"accept": "accept", "rollback": "roll back"}


def may_decide(user: str, roles: tuple[str, ...], environment: str) -> Decision:
    if any(r in MAY_DECIDE for r in roles):
        return Decision(True, f"{user} may end monitoring in {environment}")
    return Decision(
        False,
        f"{user} ({', '.join(roles) or 'no role'}) may not end monitoring in {environment} early; "
        f"only {', '.join(MAY_DECIDE)} may",
    )


def decide(
    rt: Runtime, deployment_id: str, choice: Choice, actor: str, roles: tuple[str, ...], reason: str, wait: float = 20.0
) -> DeploymentRecord:
    """Record the decision and wake the loop; answers the deployment once it ended (or after ``wait``)."""
    if not reason.strip():
        raise InvalidInput(f"a reason is needed to {WORDS[choice]} during monitoring", fix="give --reason TEXT")
    with rt.db.read() as conn:
        d = store.get_deployment(conn, deployment_id)
    allowed = may_decide(actor, roles, d.environment)
    if not allowed.allowed:
        raise refuse(rt, actor, f"monitoring.{choice}", d.id, allowed.reason)
    with rt.db.begin() as conn:
        d = store.get_deployment(conn, deployment_id)
        if d.state != DeploymentState.MONITORING:
            raise Conflict(
                f"deployment {d.id} is {d.state}, not monitoring",
                fix="only a deployment being monitored can be accepted or rolled back this way; "
                "to go back from a finished one use `conveyor rollback ENV`",
            )
        if not samples.request_decision(conn, d.id, choice, actor, reason.strip()):
            raise Conflict(f"deployment {d.id} already has a decision", fix="wait for it to end")
        audit.append(
            conn,
            at=rt.clock.now(),
            actor=actor,
            action=f"deployment.monitoring_{choice}",
            subject=d.id,
            details={"service": d.service, "environment": d.environment, "reason": reason.strip()},
        )
    wake(d.id)
    deadline = time.monotonic() + wait
    while True:
        with rt.db.read() as conn:
            d = store.get_deployment(conn, deployment_id)
        if d.state.finished or time.monotonic() > deadline:
            return d
        time.sleep(0.05)
