"""The policy matrix, pure: every role against deploy, approve, tick, verify and approve-an-emergency
on every environment of the gated service (the same config as tests/e2e/gates_world.py). What the
API does with a refusal (403, nothing changed, audited) is in tests/e2e/test_permissions.py."""

from __future__ import annotations

import textwrap

import pytest

from conveyor.auth.policy import (
    deployers,
    may_approve,
    may_approve_emergency,
    may_deploy,
    may_tick,
    may_verify,
)
from conveyor.domain.roles import ROLES
from conveyor.gates.schedule import emergency_approvers
from conveyor.spec import parse_spec

TARGET = "{kind: command, deploy: ./deploy.sh}"
SPEC = parse_spec(
    textwrap.dedent(
        f"""\
        service: shop
        environments:
          development:
            branch: develop
            target: {TARGET}
          staging:
            branch: main
            target: {TARGET}
          production:
            target: {TARGET}
            deployers: [release_manager]
            gates:
              approval: {{count: 2, from: [release_manager], self_approval: false}}
              checklist: [rollback_plan, stakeholders_notified]
              schedule: {{timezone: UTC, allow: ["Mon-Sun 00:00-24:00"], emergency: {{approvers: [manager]}}}}
          canary:
            target: {TARGET}
            deployers: [engineer, manager]
            gates:
              approval: {{count: 1, from: [manager, release_manager], self_approval: true}}
        """
    )
)
ENVS = tuple(SPEC.environments)
EVERYONE_BUT_ADMIN = {"engineer", "release_manager", "manager"}

# (action, environment) -> the roles allowed; absent means nobody
ALLOWED: dict[tuple[str, str], set[str]] = {
    ("deploy", "development"): EVERYONE_BUT_ADMIN,
    ("deploy", "staging"): EVERYONE_BUT_ADMIN,
    ("deploy", "production"): {"release_manager"},
    ("deploy", "canary"): {"engineer", "manager"},
    ("approve", "production"): {"release_manager"},
    ("approve", "canary"): {"manager", "release_manager"},
    ("tick", "production"): {"release_manager"},
    ("verify", "development"): EVERYONE_BUT_ADMIN,
    ("verify", "staging"): EVERYONE_BUT_ADMIN,
    ("verify", "production"): {"release_manager"},
    ("verify", "canary"): {"engineer", "manager"},
    ("emergency", "production"): {"manager"},
}
ACTIONS = ("deploy", "approve", "tick", "verify", "emergency")


def decide(action: str, role: str, environment: str, user: str = "pat", requester: str = "rita") -> bool:
    env = SPEC.environment(environment)
    roles = (role,)
    if action == "deploy":
        decision = may_deploy(user, roles, environment, env)
    elif action == "approve":
        decision = may_approve(user, roles, requester, environment, env)
    elif action == "tick":
        decision = may_tick(user, roles, environment, env)
    elif action == "verify":
        decision = may_verify(user, roles, environment, env)
    else:
        if env.gates.schedule is None:
            return False  # no schedule: nothing to bypass
        decision = may_approve_emergency(user, roles, requester, environment, emergency_approvers(env))
    assert decision.reason  # every answer, yes or no, says why
    if not decision.allowed:
        assert environment in decision.reason or "requested" in decision.reason
    return decision.allowed


@pytest.mark.parametrize("environment", ENVS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ACTIONS)
def test_matrix(action: str, role: str, environment: str) -> None:
    assert decide(action, role, environment) is (role in ALLOWED.get((action, environment), set()))


def test_the_matrix_names_only_known_roles_and_environments() -> None:
    for (action, environment), roles in ALLOWED.items():
        assert action in ACTIONS and environment in ENVS and roles <= set(ROLES)


def test_admin_and_reporter_are_never_implicit_deployers() -> None:
    assert set(deployers(SPEC.environment("development"))) == EVERYONE_BUT_ADMIN


@pytest.mark.parametrize(("environment", "self_approval"), [("production", False), ("canary", True)])
def test_approving_your_own_request(environment: str, self_approval: bool) -> None:
    env = SPEC.environment(environment)
    own = may_approve("ron", ("release_manager",), "ron", environment, env)
    assert own.allowed is self_approval
    if not self_approval:
        assert own.reason == "ron requested this deployment and cannot approve it"


def test_an_emergency_is_never_approved_by_its_requester() -> None:
    own = may_approve_emergency("max", ("manager",), "max", "production", ("manager",))
    assert not own.allowed and own.reason == "max requested this emergency deployment and cannot approve it"


def test_refusals_name_who_may() -> None:
    env = SPEC.environment("production")
    assert may_deploy("eve", ("engineer",), "production", env).reason == (
        "eve (engineer) may not deploy to production; only release_manager may"
    )
    assert may_approve("eve", ("engineer",), "rita", "production", env).reason == (
        "eve (engineer) may not approve deployments to production; only release_manager may"
    )
    assert may_tick("eve", ("engineer",), "production", env).reason == (
        "eve (engineer) may not tick the production checklist; only release_manager may"
    )
    assert may_approve("ron", ("release_manager",), "rita", "staging", SPEC.environment("staging")).reason == (
        "deployments to staging need no approval"
    )
    assert may_tick("ron", ("release_manager",), "staging", SPEC.environment("staging")).reason == (
        "deployments to staging have no checklist"
    )
