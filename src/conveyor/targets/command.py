"""The ``command`` target: the user's own scripts do the deploying.

Each action runs in the release's worktree with CONVEYOR_SERVICE, CONVEYOR_ENV, CONVEYOR_VERSION,
CONVEYOR_SHA, CONVEYOR_WORKDIR, CONVEYOR_PREVIOUS_VERSION (and a few more, see docs/targets.md).
A rollback deployment and a restore after a failure run ``rollback`` when it is configured,
else ``deploy`` with the older release's variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.domain.deployment import DeploymentKind
from conveyor.spec import CommandTarget as CommandTargetSpec
from conveyor.targets.base import StepOutcome, TargetContext, register

if TYPE_CHECKING:
    from conveyor.store.records import ReleaseRecord


class CommandTarget:
    def _spec(self, ctx: TargetContext) -> CommandTargetSpec:
        spec = ctx.env_spec.target
        assert isinstance(spec, CommandTargetSpec)
        return spec

    def deploy(self, ctx: TargetContext) -> StepOutcome:
        spec = self._spec(ctx)
        action = spec.deploy
        if ctx.deployment.kind == DeploymentKind.ROLLBACK and spec.rollback:
            action = spec.rollback
        return ctx.run("rollout", action, default_timeout=spec.timeout)

    def restore(self, ctx: TargetContext, release: ReleaseRecord) -> StepOutcome:
        spec = self._spec(ctx)
        workdir, built = ctx.built_workdir(release, "restore-build")  # never a checkout that was not built
        if not built.ok:
            return built
        return ctx.run(
            "restore",
            spec.rollback or spec.deploy,
            default_timeout=spec.timeout,
            release=release,
            workdir=workdir,
            rerun_interrupted=True,
            cancellable=False,
        )

    def warm_workdir(self, ctx: TargetContext, release: ReleaseRecord) -> Path | None:
        """Never: the user's scripts keep no release warm that Conveyor could switch back to."""
        return None


register("command", CommandTarget)
