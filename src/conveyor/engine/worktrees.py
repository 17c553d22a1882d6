"""Built worktrees: every step that runs in a worktree gets one that holds its commit, built.

A release is built once, by the prepare step of the deployment that first brought it to an
environment. Going back to it (a rollback, or the restore after a failed deployment) reuses that
built worktree when it is still on disk, and builds a fresh one otherwise; it never starts or
tests a checkout that was not built.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.store import deployments as store
from conveyor.store.records import ReleaseRecord
from conveyor.targets.base import StepOutcome

if TYPE_CHECKING:
    from conveyor.engine.context import StepContext  # which calls into this module (built_workdir)

BUILD_TIMEOUT = 900.0


def built_workdir(ctx: StepContext, release: ReleaseRecord) -> Path | None:
    """The worktree where ``release`` was checked out and built for this environment, if it is
    still on disk (never this deployment's own, which is what is being prepared)."""
    with ctx.runtime.db.read() as conn:
        ids = store.built_deployments(conn, ctx.service.id, ctx.deployment.environment, release.sha)
    root = ctx.runtime.settings.worktrees_dir / ctx.service.name
    for deployment_id in ids:
        if deployment_id == ctx.deployment.id:
            continue
        path = (root / deployment_id).resolve()
        if (path / ".git").exists():
            return path
    return None


def link_workdir(ctx: StepContext, source: Path) -> Path:
    """Make this deployment's worktree path point at ``source`` (idempotent)."""
    workdir = ctx.workdir()
    source = source.resolve()
    if workdir.is_symlink():
        if workdir.resolve() == source:
            return workdir
        workdir.unlink()
    elif workdir.exists():  # a half-made checkout from before a crash
        shutil.rmtree(workdir)
        ctx.repo.prune_worktrees()
    workdir.parent.mkdir(parents=True, exist_ok=True)
    workdir.symlink_to(source, target_is_directory=True)
    return workdir


def ensure_built(ctx: StepContext, release: ReleaseRecord, run_name: str) -> tuple[Path, StepOutcome]:
    """A built worktree of ``release``: the one it was built in, or a fresh checkout with the
    service's build command run in it. The outcome is not ok when that build failed."""
    found = built_workdir(ctx, release)
    if found is not None:
        return found, StepOutcome(True, f"{release.version} is built in {found.name}")
    workdir = ctx.workdir(release.sha)
    ctx.repo.add_worktree(workdir, release.sha)
    if ctx.spec.build is None:
        return workdir, StepOutcome(True, f"worktree of {release.sha[:12]} ready; no build command")
    outcome = ctx.run(
        run_name,
        ctx.spec.build,
        default_timeout=BUILD_TIMEOUT,
        rerun_interrupted=True,
        release=release,
        workdir=workdir,
        cancellable=False,
    )
    if not outcome.ok:
        return workdir, StepOutcome(
            False, f"building {release.version} again failed: {outcome.message}", outcome.output
        )
    return workdir, outcome
