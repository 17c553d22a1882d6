"""Who may do what, per environment. Pure: roles and config in, an allowed/refused answer out.
Roles are explicit: `admin` administers users and services and is not implicitly a deployer or
an approver (a platform where every admin can bypass the release process has no process)."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.domain.roles import ROLES
from conveyor.spec import EnvironmentSpec


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def _roles(allowed: list[str] | tuple[str, ...]) -> str:
    return ", ".join(allowed)


def deployers(env: EnvironmentSpec) -> tuple[str, ...]:
    """Roles that may deploy to (and roll back, tick the checklist of, verify in) the environment."""
    return tuple(env.deployers) or tuple(r for r in ROLES if r not in ("admin", "reporter"))


def may_deploy(user: str, roles: tuple[str, ...], environment: str, env: EnvironmentSpec) -> Decision:
    allowed = deployers(env)
    if any(r in allowed for r in roles):
        return Decision(True, f"{user} may deploy to {environment}")
    return Decision(False, f"{user} ({_roles(roles)}) may not deploy to {environment}; only {_roles(allowed)} may")


def may_approve(user: str, roles: tuple[str, ...], requester: str, environment: str, env: EnvironmentSpec) -> Decision:
    spec = env.gates.approval
    if spec is None:
        return Decision(False, f"deployments to {environment} need no approval")
    if not any(r in spec.from_ for r in roles):
        return Decision(
            False,
            f"{user} ({_roles(roles)}) may not approve deployments to {environment}; only {_roles(spec.from_)} may",
        )
    if user == requester and not spec.self_approval:
        return Decision(False, f"{user} requested this deployment and cannot approve it")
    return Decision(True, f"{user} may approve")


def may_tick(user: str, roles: tuple[str, ...], environment: str, env: EnvironmentSpec) -> Decision:
    if not env.gates.checklist:
        return Decision(False, f"deployments to {environment} have no checklist")
    allowed = set(deployers(env)) | set(env.gates.approval.from_ if env.gates.approval else [])
    if any(r in allowed for r in roles):
        return Decision(True, f"{user} may tick the checklist")
    return Decision(
        False, f"{user} ({_roles(roles)}) may not tick the {environment} checklist; only {_roles(sorted(allowed))} may"
    )


def may_verify(user: str, roles: tuple[str, ...], environment: str, env: EnvironmentSpec) -> Decision:
    allowed = deployers(env)
    if any(r in allowed for r in roles):
        return Decision(True, f"{user} may verify in {environment}")
    return Decision(False, f"{user} ({_roles(roles)}) may not sign off {environment}; only {_roles(allowed)} may")


def may_approve_emergency(
    user: str, roles: tuple[str, ...], requester: str, environment: str, approvers: tuple[str, ...]
) -> Decision:
    """An emergency deployment bypasses the schedule once a holder of ``approvers`` approves it."""
    if not any(r in approvers for r in roles):
        return Decision(
            False,
            f"{user} ({_roles(roles)}) may not approve an emergency in {environment}; only {_roles(approvers)} may",
        )
    if user == requester:
        return Decision(False, f"{user} requested this emergency deployment and cannot approve it")
    return Decision(True, f"{user} may approve the emergency")


# Who may acknowledge the lint's findings in a release's migrations (docs/database.md): the role the
# process document gives the production decisions. Not admin: administering Conveyor is no review.
MIGRATION_ACKNOWLEDGERS = ("release_manager",)


def may_acknowledge_migrations(user: str, roles: tuple[str, ...], environment: str) -> Decision:
    if any(r in MIGRATION_ACKNOWLEDGERS for r in roles):
        return Decision(True, f"{user} may acknowledge the migrations' findings")
    return Decision(
        False,
        f"{user} ({_roles(roles) or 'no role'}) may not acknowledge the findings in the migrations of a "
        f"deployment to {environment}; only {_roles(MIGRATION_ACKNOWLEDGERS)} may",
    )
