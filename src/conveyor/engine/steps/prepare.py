"""prepare: a git worktree of the exact commit, then the service's build command in it.

A rollback goes back to a release that was built before: its worktree is the one that release
was built in (the one its warm instances run from, for a quick rollback), so migrate and smoke
run against exactly what serves. Only when that worktree is gone is the commit built again.
"""

from __future__ import annotations

from pathlib import Path

from conveyor.engine.context import StepContext, StepOutcome
from conveyor.engine.steps import step
from conveyor.engine.worktrees import BUILD_TIMEOUT, built_workdir, link_workdir
from conveyor.targets.base import target_for


def _built_source(ctx: StepContext) -> tuple[Path, str] | None:
    assert ctx.release is not None
    warm = target_for(ctx.env_spec.target.kind).warm_workdir(ctx, ctx.release)
    if warm is not None and (warm / ".git").exists():
        return warm, f"{ctx.release.version} is warm on the agent"
    found = built_workdir(ctx, ctx.release)
    if found is not None:
        return found, f"{ctx.release.version} was built before"
    return None


@step("prepare")
def prepare(ctx: StepContext) -> StepOutcome:
    if ctx.deployment.kind == "rollback" and ctx.release:
        source = _built_source(ctx)
        if source is not None:
            workdir = link_workdir(ctx, source[0])
            return StepOutcome(True, f"{source[1]}: reusing its built worktree {workdir.resolve().name}")
    workdir = ctx.workdir()
    if workdir.is_symlink():  # never build into another release's worktree
        workdir.unlink()
    ctx.repo.add_worktree(workdir, ctx.deployment.sha)
    if ctx.spec.build is None:
        return StepOutcome(True, f"worktree of {ctx.deployment.sha[:12]} ready; no build command")
    # a build is safe to run again if the server died under it
    return ctx.run("prepare", ctx.spec.build, default_timeout=BUILD_TIMEOUT, rerun_interrupted=True)
