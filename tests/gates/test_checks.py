"""checks: every named CI check is `success` on the exact commit; failures and waits are named."""

from __future__ import annotations

import pytest
from tests.gates.specs import NOW, SHA, evidence, production, service

from conveyor.domain.evidence import Check
from conveyor.gates.checks import Checks

GATE = Checks()
S = SHA[:12]


def checks(**states: str) -> dict[str, Check]:
    return {name: Check(name=name, state=state, at=NOW) for name, state in states.items()}


def test_off_unless_configured() -> None:
    assert not GATE.applies(service(), production(service()))
    assert not GATE.applies(service("checks: []\n"), production(service("checks: []\n")))


@pytest.mark.parametrize(
    ("reported", "passed", "reason"),
    [
        ({"tests": "success", "lint": "success"}, True, f"tests, lint passed on {S}"),
        ({"tests": "success", "lint": "success", "extra": "failure"}, True, f"tests, lint passed on {S}"),
        ({"tests": "success"}, False, f"checks on {S} waiting for: lint (missing)"),
        ({"tests": "pending", "lint": "success"}, False, f"checks on {S} waiting for: tests (pending)"),
        ({"tests": "failure", "lint": "success"}, False, f"checks on {S} failed: tests"),
        ({"tests": "failure"}, False, f"checks on {S} failed: tests; waiting for: lint (missing)"),
        ({}, False, f"checks on {S} waiting for: tests (missing), lint (missing)"),
    ],
)
def test_checks_table(reported: dict[str, str], passed: bool, reason: str) -> None:
    spec = service("checks: [tests, lint]\n")
    env = production(spec)
    assert GATE.applies(spec, env)
    result = GATE.evaluate(spec, env, evidence(checks=checks(**reported)))
    assert (result.passed, result.reason) == (passed, reason)
    assert set(result.details["checks"]) == {"tests", "lint"}  # only the configured checks are reported
    for name, state in result.details["checks"].items():
        assert state == reported.get(name, "missing")
