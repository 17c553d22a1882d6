"""checklist: every configured item is ticked for this deployment; `checklist: true` is the
process document's list."""

from __future__ import annotations

import pytest
from tests.gates.specs import NOW, evidence, production, service

from conveyor.domain.evidence import Tick
from conveyor.gates.checklist import Checklist
from conveyor.spec.models import DEFAULT_CHECKLIST

GATE = Checklist()


def ticks(*items: str) -> dict[str, Tick]:
    return {item: Tick(item=item, user="ron", at=NOW) for item in items}


def test_off_unless_configured() -> None:
    for gates in ("", "checklist: false\n", "checklist: []\n"):
        assert not GATE.applies(service(gates), production(service(gates)))


def test_true_means_the_process_documents_list() -> None:
    spec = service("checklist: true\n")
    result = GATE.evaluate(spec, production(spec), evidence())
    assert result.details["items"] == list(DEFAULT_CHECKLIST) and result.details["missing"] == list(DEFAULT_CHECKLIST)


@pytest.mark.parametrize(
    ("ticked", "deployment_id", "passed", "reason"),
    [
        ((), "d-1", False, "checklist items not ticked: rollback_plan, stakeholders_notified"),
        ((), None, False, "checklist items not ticked once requested: rollback_plan, stakeholders_notified"),
        (("rollback_plan",), "d-1", False, "checklist items not ticked: stakeholders_notified"),
        (("rollback_plan", "stakeholders_notified"), "d-1", True, "all 2 checklist items ticked"),
        (("stakeholders_notified", "rollback_plan", "unrelated"), "d-1", True, "all 2 checklist items ticked"),
        (("unrelated",), "d-1", False, "checklist items not ticked: rollback_plan, stakeholders_notified"),
    ],
)
def test_checklist_table(ticked: tuple[str, ...], deployment_id: str | None, passed: bool, reason: str) -> None:
    spec = service("checklist: [rollback_plan, stakeholders_notified]\n")
    env = production(spec)
    assert GATE.applies(spec, env)
    result = GATE.evaluate(spec, env, evidence(ticks=ticks(*ticked), deployment_id=deployment_id))
    assert (result.passed, result.reason) == (passed, reason)
    assert set(result.details["ticked"]) == set(ticked) - {"unrelated"}
    assert all(t == {"by": "ron", "at": NOW.isoformat()} for t in result.details["ticked"].values())
