"""Every gate, registered by name; built-ins use the same registry as any other gate.

The built-ins are evaluated, and shown in `conveyor why` and on the dashboard, in the order
declared here: who may deploy, the evidence about the code (reviews, checks, staging, the lint
of its migrations), the people's checks (checklist), the calendar, and last the approval that
comes after all of them.
"""

from __future__ import annotations

from conveyor.gates.base import Evidence, Gate, GateResult
from conveyor.registry import Registry
from conveyor.spec import EnvironmentSpec, ServiceSpec

GATES: Registry[Gate] = Registry(
    "gate",
    (
        "conveyor.gates.deployers",
        "conveyor.gates.reviews",
        "conveyor.gates.checks",
        "conveyor.gates.staging",
        "conveyor.gates.migrations",
        "conveyor.gates.checklist",
        "conveyor.gates.schedule",
        "conveyor.gates.approval",
    ),
)


def register(gate: Gate) -> Gate:
    return GATES.register(gate.name, gate)


def evaluate(service: ServiceSpec, env: EnvironmentSpec, evidence: Evidence) -> list[GateResult]:
    """Every gate that applies to the environment, in the declared order."""
    return [g.evaluate(service, env, evidence) for g in GATES.values() if g.applies(service, env)]


def load_builtins() -> None:
    GATES.load()
