"""checks: every named CI check is `success` on the exact commit."""

from __future__ import annotations

from conveyor.gates.base import Evidence, GateResult
from conveyor.gates.registry import register
from conveyor.spec import EnvironmentSpec, ServiceSpec


class Checks:
    name = "checks"

    def applies(self, service: ServiceSpec, env: EnvironmentSpec) -> bool:
        return bool(env.gates.checks)

    def evaluate(self, service: ServiceSpec, env: EnvironmentSpec, evidence: Evidence) -> GateResult:
        states = {
            name: (evidence.checks[name].state if name in evidence.checks else "missing") for name in env.gates.checks
        }
        failed = [n for n, s in states.items() if s == "failure"]
        waiting = [n for n, s in states.items() if s in ("pending", "missing")]
        if not failed and not waiting:
            return GateResult(self.name, True, f"{', '.join(states)} passed on {evidence.sha[:12]}", {"checks": states})
        parts = []
        if failed:
            parts.append(f"failed: {', '.join(failed)}")
        if waiting:
            parts.append(f"waiting for: {', '.join(f'{n} ({states[n]})' for n in waiting)}")
        return GateResult(self.name, False, f"checks on {evidence.sha[:12]} " + "; ".join(parts), {"checks": states})


register(Checks())
