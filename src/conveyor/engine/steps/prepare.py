"""prepare: a git worktree of the exact commit, then the service's build command in it."""

from __future__ import annotations

from conveyor.engine.context import StepContext, StepOutcome
from conveyor.engine.steps import step

BUILD_TIMEOUT = 900.0


@step("prepare")
def prepare(ctx: StepContext) -> StepOutcome:
    if ctx.deployment.kind == "rollback" and ctx.release and ctx.env_spec.target.kind == "local":
        from conveyor.targets.local import LocalTarget

        if LocalTarget().is_warm(ctx, ctx.release):  # a quick rollback is a router switch
            return StepOutcome(True, f"{ctx.release.version} is warm on the agent: nothing to prepare")
    workdir = ctx.workdir()
    ctx.repo.add_worktree(workdir, ctx.deployment.sha)
    if ctx.spec.build is None:
        return StepOutcome(True, f"worktree of {ctx.deployment.sha[:12]} ready; no build command")
    # a build is safe to run again if the server died under it
    return ctx.run("prepare", ctx.spec.build, default_timeout=BUILD_TIMEOUT, rerun_interrupted=True)
