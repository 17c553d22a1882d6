"""deployers: the requester holds one of the roles allowed to deploy to the environment
(`deployers:` in conveyor.yml; when empty, every role but admin)."""

from __future__ import annotations

from conveyor.auth.policy import deployers, may_deploy
from conveyor.gates.base import Evidence, GateResult
from conveyor.gates.registry import register
from conveyor.spec import EnvironmentSpec, ServiceSpec


class Deployers:
    name = "deployers"

    def applies(self, service: ServiceSpec, env: EnvironmentSpec) -> bool:
        return True

    def evaluate(self, service: ServiceSpec, env: EnvironmentSpec, evidence: Evidence) -> GateResult:
        decision = may_deploy(evidence.requester, evidence.requester_roles, evidence.environment, env)
        details = {"allowed": deployers(env), "roles": evidence.requester_roles}
        return GateResult(self.name, decision.allowed, decision.reason, details, waitable=False)


register(Deployers())
