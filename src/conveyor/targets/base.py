"""The Target protocol, what a target sees of a deployment (TargetContext), and the registry.

Targets see no database and no engine: the engine's step context satisfies ``TargetContext``
structurally, and a target answers with a ``StepOutcome``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from conveyor.registry import Registry

if TYPE_CHECKING:
    from conveyor.settings import Settings
    from conveyor.spec import CommandSpec, EnvironmentSpec, ServiceSpec
    from conveyor.store.records import DeploymentRecord, ReleaseRecord, ServiceRecord


@dataclass(frozen=True)
class StepOutcome:
    """What a step (or a target action) reports: expected failures are values, not exceptions."""

    ok: bool
    message: str
    output: str = ""
    cancelled: bool = False


class TargetContext(Protocol):
    """What a target may read and do while it deploys: the deployment and its config, the
    release going out and the one before, worktrees, and commands run durably with the
    documented CONVEYOR_* variables."""

    @property
    def deployment(self) -> DeploymentRecord: ...

    @property
    def service(self) -> ServiceRecord: ...

    @property
    def spec(self) -> ServiceSpec: ...

    @property
    def env_spec(self) -> EnvironmentSpec: ...

    @property
    def release(self) -> ReleaseRecord | None: ...

    @property
    def previous(self) -> ReleaseRecord | None: ...

    @property
    def settings(self) -> Settings: ...

    def workdir(self, sha: str | None = None) -> Path:
        """The worktree of this deployment (or of another commit, for a restore)."""
        ...

    def built_workdir(self, release: ReleaseRecord, run_name: str) -> tuple[Path, StepOutcome]:
        """A built worktree of ``release``: the one it was built in, or a fresh checkout built now
        (output under ``run_name``); the outcome is not ok when that build failed."""
        ...

    def command_env(self, release: ReleaseRecord | None = None, workdir: Path | None = None) -> dict[str, str]:
        """The CONVEYOR_* variables (and the allowed server variables) for ``release``."""
        ...

    def run(
        self,
        name: str,
        command: CommandSpec,
        *,
        default_timeout: float,
        rerun_interrupted: bool = False,
        release: ReleaseRecord | None = None,
        workdir: Path | None = None,
        cancellable: bool = True,
    ) -> StepOutcome:
        """Run ``command`` durably in the worktree; a rerun after a crash attaches to it."""
        ...

    def cancel_requested(self) -> bool:
        """True once someone asked to cancel this deployment."""
        ...


class Target(Protocol):
    """Puts releases of a service into an environment.

    ``deploy`` makes ``ctx.release`` serve (for a rollback deployment, an older release).
    ``restore`` puts ``release`` back after a failed or cancelled rollout, so the previous
    release keeps serving. Both are called again after a crash and must be idempotent.
    ``warm_workdir`` answers whether ``release`` is warm on the target (running, healthy, out
    of the rotation, ready to switch back to), with the built worktree it runs from; None when
    it is not, or when the target keeps nothing warm.
    """

    def deploy(self, ctx: TargetContext) -> StepOutcome: ...

    def restore(self, ctx: TargetContext, release: ReleaseRecord) -> StepOutcome: ...

    def warm_workdir(self, ctx: TargetContext, release: ReleaseRecord) -> Path | None: ...


TARGETS: Registry[Callable[[], Target]] = Registry(
    "target kind", ("conveyor.targets.local", "conveyor.targets.command")
)


def register(kind: str, factory: Callable[[], Target]) -> None:
    TARGETS.register(kind, factory)


def target_for(kind: str) -> Target:
    return TARGETS.get(kind)()
