"""approval: distinct approvers with an allowed role approved this deployment (of this commit);
the requester never counts unless ``self_approval: true``."""

from __future__ import annotations

from conveyor.gates.base import Evidence, GateResult, names
from conveyor.gates.registry import register
from conveyor.spec import EnvironmentSpec, ServiceSpec


class ApprovalGate:
    name = "approval"

    def applies(self, service: ServiceSpec, env: EnvironmentSpec) -> bool:
        return env.gates.approval is not None

    def evaluate(self, service: ServiceSpec, env: EnvironmentSpec, evidence: Evidence) -> GateResult:
        spec = env.gates.approval
        assert spec is not None
        roles = tuple(spec.from_)
        counted = sorted(
            {
                a.user
                for a in evidence.approvals
                if any(r in roles for r in a.roles) and (spec.self_approval or a.user != evidence.requester)
            }
        )
        details = {"needed": spec.count, "from": roles, "approved_by": counted}
        if evidence.deployment_id is None:
            return GateResult(
                self.name, False, f"needs {spec.count} approval(s) from {names(roles)} once requested", details
            )
        if len(counted) >= spec.count:
            return GateResult(self.name, True, f"approved by {', '.join(counted)}", details)
        missing = spec.count - len(counted)
        reason = f"waiting for {missing} more approval(s) from {names(roles)}"
        if counted:
            reason += f" (approved by {', '.join(counted)})"
        if not spec.self_approval:
            reason += f"; {evidence.requester} requested it and cannot approve it"
        return GateResult(self.name, False, reason, details)


register(ApprovalGate())
