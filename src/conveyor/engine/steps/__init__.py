"""Deployment steps: one module each, all registered by name in ``STEPS``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from conveyor.engine.context import StepContext, StepOutcome


class Step(Protocol):
    """One stage of a deployment. ``run`` may be called again after a crash (the interrupted
    step runs again), so it must leave the same result as running once."""

    def __call__(self, ctx: StepContext) -> StepOutcome: ...


STEPS: dict[str, Step] = {}


def step(name: str) -> Callable[[Step], Step]:
    def register(fn: Step) -> Step:
        STEPS[name] = fn
        return fn

    return register


def load_builtin_steps() -> None:
    from conveyor.engine.steps import announce, migrate, prepare, rollout, smoke, tag  # noqa: F401
