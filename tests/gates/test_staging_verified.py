"""staging_verified: the exact commit succeeded in the named environment with its smoke test
passed (or absent), and with `signoff: true` someone verified it there."""

from __future__ import annotations

import pytest
from tests.gates.specs import NOW, SHA, evidence, production, service

from conveyor.domain.evidence import EnvironmentRun, Verification
from conveyor.gates.staging import StagingVerified

GATE = StagingVerified()
S = SHA[:12]


def run(state: str = "succeeded", smoke: str = "succeeded", environment: str = "staging") -> EnvironmentRun:
    return EnvironmentRun(environment=environment, state=state, smoke=smoke, finished_at=NOW)


def test_off_unless_configured() -> None:
    assert not GATE.applies(service(), production(service()))
    assert not GATE.applies(service("staging_verified: false\n"), production(service("staging_verified: false\n")))


@pytest.mark.parametrize(
    ("runs", "passed", "reason"),
    [
        ((), False, f"{S} has not been deployed to staging yet"),
        ((run(environment="development"),), False, f"{S} has not been deployed to staging yet"),
        (
            (run("failed", "absent"),),
            False,
            f"{S} did not pass staging: its last deployment there failed (smoke absent)",
        ),
        (
            (run("succeeded", "failed"),),
            False,
            f"{S} did not pass staging: its last deployment there succeeded (smoke failed)",
        ),
        ((run("succeeded", "skipped"),), False, None),  # a skipped smoke test is no verification
        ((run(),), True, f"{S} passed staging (smoke test succeeded)"),
        ((run(smoke="absent"),), True, f"{S} passed staging (smoke test absent)"),  # staging has no smoke test
        ((run("failed"), run()), True, None),  # one good run is enough
        ((run("rolled_back"),), False, None),
    ],
)
def test_staging_table(runs: tuple[EnvironmentRun, ...], passed: bool, reason: str | None) -> None:
    spec = service("staging_verified: true\n")
    result = GATE.evaluate(spec, production(spec), evidence(runs=runs))
    assert result.passed is passed and result.details["environment"] == "staging"
    if reason is not None:
        assert result.reason == reason


@pytest.mark.parametrize(
    ("verifications", "passed", "reason"),
    [
        (
            (),
            False,
            f"{S} passed staging; waiting for someone to verify it there (`conveyor verify staging --ref {S}`)",
        ),
        ((Verification("development", "eve", NOW),), False, None),  # a sign-off elsewhere does not count
        ((Verification("staging", "eve", NOW),), True, f"{S} passed staging, verified by eve"),
        ((Verification("staging", "eve", NOW), Verification("staging", "ron", NOW)), True, None),
    ],
)
def test_signoff_table(verifications: tuple[Verification, ...], passed: bool, reason: str | None) -> None:
    spec = service("staging_verified: {signoff: true}\n")
    result = GATE.evaluate(spec, production(spec), evidence(runs=(run(),), verifications=verifications))
    assert result.passed is passed
    if reason is not None:
        assert result.reason == reason
    if passed:
        assert result.details["verified_by"] == verifications[-1].user


def test_signoff_needs_a_good_run_first() -> None:
    spec = service("staging_verified: {signoff: true}\n")
    signed = (Verification("staging", "eve", NOW),)
    result = GATE.evaluate(spec, production(spec), evidence(runs=(), verifications=signed))
    assert not result.passed and "has not been deployed to staging" in result.reason


def test_another_environment_by_name() -> None:
    spec = service(
        "staging_verified: {environment: qa}\n",
        extra="  qa:\n    target: {kind: command, deploy: ./deploy.sh}\n",
    )
    env = production(spec)
    assert not GATE.evaluate(spec, env, evidence(runs=(run(),))).passed
    result = GATE.evaluate(spec, env, evidence(runs=(run(environment="qa"),)))
    assert result.passed and result.details["environment"] == "qa"
