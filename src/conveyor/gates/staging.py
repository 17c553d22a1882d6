"""staging_verified: the exact commit succeeded in the staging environment, its smoke test passed,
and (with ``signoff: true``) someone recorded that they verified it there."""

from __future__ import annotations

from conveyor.gates.base import Evidence, GateResult
from conveyor.gates.registry import register
from conveyor.spec import EnvironmentSpec, ServiceSpec


class StagingVerified:
    name = "staging_verified"

    def applies(self, service: ServiceSpec, env: EnvironmentSpec) -> bool:
        return env.gates.staging_verified is not None

    def evaluate(self, service: ServiceSpec, env: EnvironmentSpec, evidence: Evidence) -> GateResult:
        spec = env.gates.staging_verified
        assert spec is not None
        where, sha = spec.environment, evidence.sha[:12]
        good = [
            r
            for r in evidence.runs
            if r.environment == where and r.state == "succeeded" and r.smoke in ("succeeded", "absent")
        ]
        if not good:
            tried = [r for r in evidence.runs if r.environment == where]
            if tried:
                last = tried[-1]
                return GateResult(
                    self.name,
                    False,
                    f"{sha} did not pass {where}: its last deployment there {last.state} (smoke {last.smoke})",
                    {"environment": where},
                )
            return GateResult(self.name, False, f"{sha} has not been deployed to {where} yet", {"environment": where})
        if spec.signoff:
            signed = [v for v in evidence.verifications if v.environment == where]
            if not signed:
                return GateResult(
                    self.name,
                    False,
                    f"{sha} passed {where}; waiting for someone to verify it there "
                    f"(`conveyor verify {where} --ref {sha}`)",
                    {"environment": where},
                )
            return GateResult(
                self.name,
                True,
                f"{sha} passed {where}, verified by {signed[-1].user}",
                {"environment": where, "verified_by": signed[-1].user},
            )
        return GateResult(
            self.name, True, f"{sha} passed {where} (smoke test {good[-1].smoke})", {"environment": where}
        )


register(StagingVerified())
