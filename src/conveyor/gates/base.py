"""The Gate protocol. The evidence gates look at and the results they give are domain values
(``domain/evidence.py``), imported here for the gates' convenience.

A gate never raises for an expected outcome: it returns ``GateResult(passed=False, reason=...)``
whose reason says what is missing and how to get it. Evidence is assembled by the engine
(``engine/evidence.py``) from the store; gates see only these plain values.
"""

from __future__ import annotations

from typing import Protocol

from conveyor.domain.evidence import (
    Approval,
    Check,
    EnvironmentRun,
    Evidence,
    GateResult,
    Review,
    Tick,
    Verification,
)
from conveyor.spec import EnvironmentSpec, ServiceSpec

__all__ = [
    "Approval",
    "Check",
    "EnvironmentRun",
    "Evidence",
    "Gate",
    "GateResult",
    "Review",
    "Tick",
    "Verification",
    "names",
]


class Gate(Protocol):
    """One rule. ``applies`` says whether the environment's config turns it on."""

    name: str

    def applies(self, service: ServiceSpec, env: EnvironmentSpec) -> bool: ...

    def evaluate(self, service: ServiceSpec, env: EnvironmentSpec, evidence: Evidence) -> GateResult: ...


def names(items: list[str] | tuple[str, ...]) -> str:
    return ", ".join(items) if items else "nobody"
