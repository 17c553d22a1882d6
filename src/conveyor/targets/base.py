"""The Target protocol and its registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from conveyor.registry import Registry

if TYPE_CHECKING:
    from conveyor.engine.context import StepContext, StepOutcome
    from conveyor.store.records import ReleaseRecord


class Target(Protocol):
    """Puts releases of a service into an environment.

    ``deploy`` makes ``ctx.release`` serve (for a rollback deployment, an older release).
    ``restore`` puts ``release`` back after a failed or cancelled rollout, so the previous
    release keeps serving. Both are called again after a crash and must be idempotent.
    """

    def deploy(self, ctx: StepContext) -> StepOutcome: ...

    def restore(self, ctx: StepContext, release: ReleaseRecord) -> StepOutcome: ...


TARGETS: Registry[Callable[[], Target]] = Registry(
    "target kind", ("conveyor.targets.local", "conveyor.targets.command")
)


def register(kind: str, factory: Callable[[], Target]) -> None:
    TARGETS.register(kind, factory)


def target_for(kind: str) -> Target:
    return TARGETS.get(kind)()
