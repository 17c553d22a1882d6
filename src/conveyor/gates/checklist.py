"""checklist: every item of the environment's deployment checklist is ticked for this deployment
(by whom and when is recorded). ``checklist: true`` means the process document's list."""

from __future__ import annotations

from conveyor.gates.base import Evidence, GateResult
from conveyor.gates.registry import register
from conveyor.spec import EnvironmentSpec, ServiceSpec


class Checklist:
    name = "checklist"

    def applies(self, service: ServiceSpec, env: EnvironmentSpec) -> bool:
        return bool(env.gates.checklist)

    def evaluate(self, service: ServiceSpec, env: EnvironmentSpec, evidence: Evidence) -> GateResult:
        items = list(env.gates.checklist)
        ticked = {i: {"by": t.user, "at": t.at.isoformat()} for i, t in evidence.ticks.items() if i in items}
        missing = [i for i in items if i not in ticked]
        details = {"items": items, "ticked": ticked, "missing": missing}
        if not missing:
            return GateResult(self.name, True, f"all {len(items)} checklist items ticked", details)
        when = "" if evidence.deployment_id else " once requested"
        return GateResult(self.name, False, f"checklist items not ticked{when}: {', '.join(missing)}", details)


register(Checklist())
