"""What the signed-in user may do on a deployment, from the same policy functions the engine checks
with (auth/policy.py): the buttons a page shows, and "waiting for you" on the overview.

A pending deployment waits for you when you may approve it and have not, or when you may tick its
checklist and items remain. The server checks every action again when it is posted."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.auth.policy import may_approve, may_approve_emergency, may_deploy, may_tick
from conveyor.auth.users import User
from conveyor.domain.deployment import DeploymentState
from conveyor.gates.schedule import emergency_approvers
from conveyor.spec import EnvironmentSpec
from conveyor.store.records import DeploymentRecord


@dataclass(frozen=True)
class Allowed:
    approve: bool  # may approve, and has not yet
    tick: tuple[str, ...]  # checklist items the user may tick that are not ticked yet
    cancel: bool
    rollback: bool  # may roll the environment back
    approved: bool  # the user has already approved


def may_approve_deployment(user: User, d: DeploymentRecord, env: EnvironmentSpec) -> bool:
    """The same decision as ``evidence_intake.approve`` (emergency approvers included)."""
    if may_approve(user.name, user.roles, d.actor, d.environment, env).allowed:
        return True
    if d.emergency and env.gates.schedule is not None:
        return may_approve_emergency(user.name, user.roles, d.actor, d.environment, emergency_approvers(env)).allowed
    return False


def allowed(user: User, d: DeploymentRecord, env: EnvironmentSpec, approvers: set[str], ticked: set[str]) -> Allowed:
    pending = d.state == DeploymentState.PENDING
    deployer = may_deploy(user.name, user.roles, d.environment, env).allowed
    approved = user.name in approvers
    remaining = tuple(i for i in env.gates.checklist if i not in ticked)
    ticker = pending and may_tick(user.name, user.roles, d.environment, env).allowed
    return Allowed(
        approve=pending and not approved and may_approve_deployment(user, d, env),
        tick=remaining if ticker else (),
        cancel=not d.state.finished and (deployer or d.actor == user.name),
        rollback=deployer,
        approved=approved,
    )


def needs(allow: Allowed) -> list[str]:
    """What a pending deployment needs from this user, in words; empty when nothing."""
    out = []
    if allow.approve:
        out.append("your approval")
    if allow.tick:
        out.append("checklist: " + ", ".join(allow.tick))
    return out
