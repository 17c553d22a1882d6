"""The Target protocol and its registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from conveyor.errors import InvalidInput

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


TARGETS: dict[str, Callable[[], Target]] = {}


def register(kind: str, factory: Callable[[], Target]) -> None:
    TARGETS[kind] = factory


def target_for(kind: str) -> Target:
    if kind not in TARGETS:
        raise InvalidInput(f"target kind {kind!r} is not available", fix=f"use one of: {', '.join(sorted(TARGETS))}")
    return TARGETS[kind]()
