"""Deployment steps: one module each, all registered by name in ``STEPS``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from conveyor.registry import Registry

if TYPE_CHECKING:
    from conveyor.engine.context import StepContext, StepOutcome


class Step(Protocol):
    """One stage of a deployment. ``run`` may be called again after a crash (the interrupted
    step runs again), so it must leave the same result as running once."""

    def __call__(self, ctx: StepContext) -> StepOutcome: ...


STEPS: Registry[Step] = Registry(
    "step",
    tuple(
        f"conveyor.engine.steps.{name}"
        for name in ("prepare", "tag", "migrate", "rollout", "smoke", "announce", "maintenance", "database")
    ),
)


def step(name: str) -> Callable[[Step], Step]:
    return STEPS.decorator(name)


def load_builtin_steps() -> None:
    STEPS.load()
