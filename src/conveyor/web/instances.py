"""Instance output on the service page: each environment's running instances and their recent
lines, read from the agent through the same function as the API route (any signed-in user)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conveyor.api.instances import environment_output
from conveyor.engine.runtime import Runtime
from conveyor.errors import ConveyorError
from conveyor.spec import ServiceSpec

LINES = 40


@dataclass(frozen=True)
class EnvironmentOutput:
    environment: str
    instances: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""  # why there is nothing to show


def environment_outputs(rt: Runtime, service: str, spec: ServiceSpec, lines: int = LINES) -> list[EnvironmentOutput]:
    """One entry per environment that runs on the agent (``local`` targets), in config order."""
    out = []
    for name, env in spec.environments.items():
        if env.target.kind != "local":
            continue
        try:
            doc = environment_output(rt, service, name, lines)
        except ConveyorError as exc:  # the agent answered with an error: say so, keep the page
            out.append(EnvironmentOutput(name, note=exc.message))
            continue
        note = ""
        if not doc["instances"]:
            note = "No instance is running." if doc["agent"] else "No agent is running on the server's host."
        out.append(EnvironmentOutput(name, doc["instances"], note))
    return out
