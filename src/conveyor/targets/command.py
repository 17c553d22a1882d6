"""The ``command`` target: the user's own scripts do the deploying.

Each action runs in the release's worktree with CONVEYOR_SERVICE, CONVEYOR_ENV, CONVEYOR_VERSION,
CONVEYOR_SHA, CONVEYOR_WORKDIR, CONVEYOR_PREVIOUS_VERSION (and a few more, see docs/targets.md).
A rollback deployment and a restore after a failure run ``rollback`` when it is configured,
else ``deploy`` with the older release's variables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.domain.deployment import DeploymentKind
from conveyor.engine.context import StepContext, StepOutcome
from conveyor.engine.worktrees import ensure_built
from conveyor.spec import CommandTarget as CommandTargetSpec
from conveyor.targets.base import register

if TYPE_CHECKING:
    from conveyor.store.records import ReleaseRecord


class CommandTarget:
    def _spec(self, ctx: StepContext) -> CommandTargetSpec:
        spec = ctx.env_spec.target
        assert isinstance(spec, CommandTargetSpec)
        return spec

    def deploy(self, ctx: StepContext) -> StepOutcome:
        spec = self._spec(ctx)
        action = spec.deploy
        if ctx.deployment.kind == DeploymentKind.ROLLBACK and spec.rollback:
            action = spec.rollback
        return ctx.run("rollout", action, default_timeout=spec.timeout)

    def restore(self, ctx: StepContext, release: ReleaseRecord) -> StepOutcome:
        spec = self._spec(ctx)
        workdir, built = ensure_built(ctx, release, "restore-build")  # never a checkout that was not built
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


register("command", CommandTarget)
