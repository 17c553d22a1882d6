"""approval: distinct approvers holding an allowed role; the requester counts only with
`self_approval: true`; before a request exists the gate cannot pass."""

from __future__ import annotations

import pytest
from tests.gates.specs import NOW, evidence, production, service

from conveyor.domain.evidence import Approval
from conveyor.gates.approval import ApprovalGate

GATE = ApprovalGate()


def by(user: str, *roles: str) -> Approval:
    return Approval(user=user, roles=roles or ("release_manager",), at=NOW)


def test_off_unless_configured() -> None:
    assert not GATE.applies(service(), production(service()))


@pytest.mark.parametrize(
    ("config", "approvals", "passed", "counted", "reason"),
    [
        (
            "{count: 2}",
            (),
            False,
            [],
            "waiting for 2 more approval(s) from release_manager; rita requested it and cannot approve it",
        ),
        (
            "{count: 2}",
            (by("ron"),),
            False,
            ["ron"],
            "waiting for 1 more approval(s) from release_manager (approved by ron); "
            "rita requested it and cannot approve it",
        ),
        ("{count: 2}", (by("ron"), by("rosa")), True, ["ron", "rosa"], "approved by ron, rosa"),
        ("{count: 2}", (by("ron"), by("ron")), False, ["ron"], None),  # one person counts once
        ("{count: 1}", (by("rita"),), False, [], None),  # the requester never counts by default
        ("{count: 1, self_approval: true}", (by("rita"),), True, ["rita"], "approved by rita"),
        ("{count: 1, self_approval: true}", (), False, [], "waiting for 1 more approval(s) from release_manager"),
        ("{count: 1}", (by("eve", "engineer"),), False, [], None),  # a role not allowed does not count
        ("{count: 1, from: [manager, release_manager]}", (by("max", "manager"),), True, ["max"], None),
        ("{count: 1, from: [manager]}", (by("ron"),), False, [], None),
        ("{count: 1}", (by("ada", "admin", "release_manager"),), True, ["ada"], None),  # any one role is enough
    ],
)
def test_approval_table(
    config: str, approvals: tuple[Approval, ...], passed: bool, counted: list[str], reason: str | None
) -> None:
    spec = service(f"approval: {config}\n")
    env = production(spec)
    assert GATE.applies(spec, env)
    result = GATE.evaluate(spec, env, evidence(approvals=approvals))
    assert (result.passed, result.details["approved_by"]) == (passed, counted)
    assert result.details["needed"] == env.gates.approval.count  # type: ignore[union-attr]
    if reason is not None:
        assert result.reason == reason


def test_before_a_request_it_cannot_pass() -> None:
    spec = service("approval: {count: 1, self_approval: true}\n")
    result = GATE.evaluate(spec, production(spec), evidence(deployment_id=None, approvals=(by("rita"),)))
    assert not result.passed and result.reason == "needs 1 approval(s) from release_manager once requested"
