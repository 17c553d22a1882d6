"""Every gate, registered by name; built-ins use the same registry as any other gate."""

from __future__ import annotations

from conveyor.gates.base import Evidence, Gate, GateResult
from conveyor.spec import EnvironmentSpec, ServiceSpec

GATES: dict[str, Gate] = {}


def register(gate: Gate) -> Gate:
    GATES[gate.name] = gate
    return gate


def evaluate(service: ServiceSpec, env: EnvironmentSpec, evidence: Evidence) -> list[GateResult]:
    """Every gate that applies to the environment, in registration order."""
    load_builtins()
    return [g.evaluate(service, env, evidence) for g in GATES.values() if g.applies(service, env)]


def load_builtins() -> None:
    from conveyor.gates import approval, checklist, checks, deployers, reviews, schedule, staging  # noqa: F401
