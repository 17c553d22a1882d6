"""schedule: the deploy calendar at the evidence's instant (windows, weekends, holidays, freezes);
a closed schedule waits only with `when_open`; an emergency passes once an emergency approver who
is not the requester approves it. (The calendar's own rules are in tests/domain/test_calendar*.py.)"""

from __future__ import annotations

from datetime import datetime

import pytest
from tests.gates.specs import NOW, evidence, production, service

from conveyor.domain.calendar import Freeze
from conveyor.domain.evidence import Approval
from conveyor.gates.schedule import ScheduleGate

GATE = ScheduleGate()
OFFICE = (
    "schedule:\n"
    "  timezone: America/Los_Angeles\n"
    '  allow: ["Tue-Thu 10:00-15:00"]\n'
    '  deny: ["Fri 12:00-24:00"]\n'
    "  holidays: US\n"
)
EMERGENCY = OFFICE + "  emergency: {approvers: [manager]}\n"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_off_unless_configured() -> None:
    assert not GATE.applies(service(), production(service()))
    assert GATE.applies(service(OFFICE), production(service(OFFICE)))


@pytest.mark.parametrize(
    ("now", "passed", "in_reason", "next_open"),
    [
        ("2026-12-03T14:30:00-08:00", True, "Tue-Thu 10:00-15:00", None),  # Thursday afternoon
        ("2026-12-03T15:00:00-08:00", False, None, "2026-12-08T10:00:00-08:00"),  # the window has closed
        ("2026-12-01T09:59:00-08:00", False, None, "2026-12-01T10:00:00-08:00"),  # a minute early
        ("2026-11-26T11:00:00-08:00", False, "Thanksgiving", "2026-12-01T10:00:00-08:00"),
        ("2026-12-04T12:00:00-08:00", False, "Friday after 12:00", "2026-12-08T10:00:00-08:00"),
        ("2026-12-05T11:00:00-08:00", False, "weekend", "2026-12-08T10:00:00-08:00"),
    ],
)
def test_schedule_table(now: str, passed: bool, in_reason: str | None, next_open: str | None) -> None:
    spec = service(OFFICE)
    result = GATE.evaluate(spec, production(spec), evidence(now=at(now)))
    assert result.passed is passed, result.reason
    assert result.details["open"] is passed and result.details["timezone"] == "America/Los_Angeles"
    if in_reason:
        assert in_reason in result.reason
    if next_open:
        assert result.details["next_open"] == next_open  # in the schedule's own zone
        opening = at(next_open).strftime("%Y-%m-%d %H:%M")
        assert result.reason.endswith(f"; next opening {opening} PST")
    else:
        assert result.details["closes_at"] is not None


@pytest.mark.parametrize("when_open", [False, True])
def test_closed_waits_only_when_asked(when_open: bool) -> None:
    spec = service(OFFICE)
    result = GATE.evaluate(spec, production(spec), evidence(now=at("2026-12-05T11:00:00-08:00"), when_open=when_open))
    assert not result.passed and result.waitable is when_open


def test_a_freeze_closes_an_open_window() -> None:
    spec = service(OFFICE)
    freeze = Freeze(at("2026-12-01T00:00:00-08:00"), at("2026-12-05T00:00:00-08:00"), "end-of-year freeze")
    result = GATE.evaluate(spec, production(spec), evidence(now=at("2026-12-03T14:30:00-08:00"), freezes=(freeze,)))
    assert not result.passed and "end-of-year freeze" in result.reason
    lifted = GATE.evaluate(spec, production(spec), evidence(now=at("2026-12-03T14:30:00-08:00")))
    assert lifted.passed


def manager(user: str = "max", *roles: str) -> Approval:
    return Approval(user=user, roles=roles or ("manager",), at=NOW)


@pytest.mark.parametrize(
    ("config", "approvals", "passed", "approved_by"),
    [
        (EMERGENCY, (), False, []),
        (EMERGENCY, (manager(),), True, ["max"]),
        (EMERGENCY, (manager("ron", "release_manager"),), False, []),  # not an emergency approver
        (EMERGENCY, (manager("rita"),), False, []),  # the requester never approves her own emergency
        (OFFICE, (manager(),), True, ["max"]),  # the default emergency approvers: manager
        (OFFICE + "  emergency: {approvers: [release_manager]}\n", (manager("ron", "release_manager"),), True, ["ron"]),
    ],
)
def test_emergency_table(config: str, approvals: tuple[Approval, ...], passed: bool, approved_by: list[str]) -> None:
    spec = service(config)
    closed = evidence(now=at("2026-12-05T11:00:00-08:00"), emergency=True, approvals=approvals)
    result = GATE.evaluate(spec, production(spec), closed)
    assert result.passed is passed and result.details["emergency_approved_by"] == approved_by
    if passed:
        assert result.reason.startswith("emergency: schedule bypassed (") and approved_by[0] in result.reason
    else:
        assert result.reason.startswith("emergency outside the schedule (") and "(not rita)" in result.reason


def test_an_emergency_inside_the_window_needs_nobody() -> None:
    spec = service(EMERGENCY)
    result = GATE.evaluate(spec, production(spec), evidence(now=at("2026-12-03T14:30:00-08:00"), emergency=True))
    assert result.passed and "emergency_approved_by" not in result.details
