"""database: the database part of ``rollback --with-database`` (docs/database.md).

``ctx.release`` is the release rolled back to, ``ctx.previous`` the one serving that is rolled
back. With ``migrate.down``, that command runs in the built worktree of the release being rolled
back (its code knows how to undo its own migrations), told where the target is by
CONVEYOR_ROLLBACK_TO_WORKDIR, _VERSION and _SHA. Otherwise ``database.restore`` runs with
CONVEYOR_BACKUP = the backup taken before the first migration after the target (see
``backup_to_restore``). Either command runs durably, once: after a crash the step attaches to it or
reads its result, it never runs it a second time.
"""

from __future__ import annotations

from pathlib import Path

from conveyor.domain.deployment import StepState
from conveyor.engine.context import StepContext, StepOutcome
from conveyor.engine.schema_rollback import backup_before
from conveyor.engine.steps import step
from conveyor.engine.steps.extra_env import pg_options, with_env
from conveyor.errors import ConveyorError
from conveyor.store import deployments as store
from conveyor.store.records import ReleaseRecord

DATABASE_TIMEOUT = 3600.0


def _target_workdir(ctx: StepContext, target: ReleaseRecord) -> Path:
    """The built worktree of the release rolled back to (the prepare step linked or built it)."""
    workdir = ctx.workdir()
    if (workdir / ".git").exists():
        return workdir
    path, built = ctx.built_workdir(target, "database-target-build")
    if not built.ok:
        raise ConveyorError(built.message)
    return path


def backup_to_restore(ctx: StepContext, target: ReleaseRecord) -> str:
    """The backup that holds the schema ``target`` ran with, in this environment: the one taken
    before the first migration after the target's schema was last in place (the rule of
    engine/schema_rollback.py ``backup_before``, which the rollback request checks too). Its file
    must still be on disk."""
    environment = ctx.deployment.environment
    with ctx.runtime.db.read() as conn:
        backup = backup_before(conn, ctx.service.id, environment, target)
    if backup is None:
        raise ConveyorError(
            f"no backup of {environment}'s database was taken before the first migration after {target.version}, "
            "so database.restore has nothing to restore",
            fix="configure migrate.down, or restore the database yourself and roll back without --with-database",
        )
    if not Path(backup).is_file():
        raise ConveyorError(
            f"the backup {backup}, taken before the first migration after {target.version}, is gone",
            fix="put the file back, or configure migrate.down",
        )
    return backup


def _maintenance_note(ctx: StepContext) -> str:
    """What a failure leaves: maintenance mode on, when this rollback turned it on."""
    with ctx.runtime.db.read() as conn:
        steps = store.get_steps(conn, ctx.deployment.id)
    if any(s.name == "maintenance_on" and s.state == StepState.SUCCEEDED for s in steps):
        env = ctx.deployment.environment
        return (
            f"; maintenance mode stays on in {env} until the database is checked "
            f"(then `conveyor maintenance {env} off`)"
        )
    return ""


def _failed(ctx: StepContext, outcome: StepOutcome) -> StepOutcome:
    if outcome.ok:
        return outcome
    return StepOutcome(False, outcome.message + _maintenance_note(ctx), outcome.output, outcome.cancelled)


@step("database")
def database(ctx: StepContext) -> StepOutcome:
    target, rolled_back = ctx.release, ctx.previous
    env = ctx.deployment.environment
    if ctx.deployment.kind.value != "rollback" or target is None:
        return StepOutcome(False, "the database step belongs to a rollback --with-database; nothing was changed")
    if rolled_back is None:
        return StepOutcome(False, f"no release serves in {env}, so there is no migration to undo")
    down = ctx.env_spec.migrate.down if ctx.env_spec.migrate else None
    restore = ctx.env_spec.database.restore if ctx.env_spec.database else None
    try:
        target_dir = _target_workdir(ctx, target)
        where = {
            "CONVEYOR_ROLLBACK_TO_WORKDIR": str(target_dir),
            "CONVEYOR_ROLLBACK_TO_VERSION": target.version,
            "CONVEYOR_ROLLBACK_TO_SHA": target.sha,
        }
        if down is not None:
            workdir, built = ctx.built_workdir(rolled_back, "database-build")
            if not built.ok:
                return _failed(ctx, built)
            runner = with_env(ctx, {**where, "PGOPTIONS": pg_options(ctx)})
            outcome = runner.run(
                "database", down, default_timeout=DATABASE_TIMEOUT, release=rolled_back, workdir=workdir
            )
            what = f"{rolled_back.version}'s migrations undone by migrate.down, back to {target.version}'s schema"
        elif restore is not None:
            backup = backup_to_restore(ctx, target)
            runner = with_env(ctx, {**where, "CONVEYOR_BACKUP": backup})
            outcome = runner.run("database", restore, default_timeout=DATABASE_TIMEOUT, workdir=target_dir)
            what = (
                f"database restored from {backup}, the backup taken before the first migration after {target.version}"
            )
        else:
            return StepOutcome(
                False,
                f"{env} has neither migrate.down nor database.restore, so the database cannot be rolled back "
                "(set one in conveyor.yml); nothing was changed" + _maintenance_note(ctx),
            )
    except ConveyorError as exc:
        return _failed(ctx, StepOutcome(False, str(exc)))
    if outcome.ok:
        return StepOutcome(True, what, outcome.output)
    return _failed(ctx, outcome)
