"""deployers: who may request a deployment, from the requester's roles and `deployers:`."""

from __future__ import annotations

import pytest
from tests.gates.specs import evidence, production, service

from conveyor.gates.deployers import Deployers

GATE = Deployers()


@pytest.mark.parametrize(
    ("deployers", "roles", "passed"),
    [
        ("", ("engineer",), True),  # unset: every role but admin and reporter
        ("", ("release_manager",), True),
        ("", ("manager",), True),
        ("", ("admin",), False),
        ("", ("reporter",), False),
        ("", (), False),
        ("[release_manager]", ("release_manager",), True),
        ("[release_manager]", ("engineer",), False),
        ("[release_manager]", ("admin",), False),
        ("[release_manager]", ("engineer", "release_manager"), True),  # any one role is enough
        ("[engineer, manager]", ("manager",), True),
        ("[admin]", ("admin",), True),  # an explicit list may name admin
    ],
)
def test_deployers_table(deployers: str, roles: tuple[str, ...], passed: bool) -> None:
    spec = service(deployers=deployers)
    env = production(spec)
    assert GATE.applies(spec, env)
    result = GATE.evaluate(spec, env, evidence(requester="pat", requester_roles=roles))
    assert result.gate == "deployers" and result.passed is passed
    assert result.waitable is False  # waiting never changes a role
    assert result.details["roles"] == roles
    if passed:
        assert result.reason == "pat may deploy to production"
    else:
        assert result.reason.startswith(f"pat ({', '.join(roles)}) may not deploy to production; only ")
        for role in result.details["allowed"]:
            assert role in result.reason
