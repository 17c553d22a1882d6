"""database: the database part of ``rollback --with-database`` (docs/database.md).

``ctx.release`` is the release rolled back to, ``ctx.previous`` the one serving that is rolled
back. With ``migrate.down``, that command runs in the built worktree of the release being rolled
back (its code knows how to undo its own migrations), told where the target is by
CONVEYOR_ROLLBACK_TO_WORKDIR, _VERSION and _SHA. Otherwise ``database.restore`` runs with
CONVEYOR_BACKUP = the backup taken before the first migration after the target (see
``backup_before``). Either command runs durably, once: after a crash the step attaches to it or
reads its result, it never runs it a second time.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection

from conveyor.domain.deployment import DeploymentState, StepState
from conveyor.engine.context import StepContext, StepOutcome
from conveyor.engine.steps import step
from conveyor.engine.steps.extra_env import pg_options, with_env
from conveyor.errors import ConveyorError
from conveyor.store import deployments as store
from conveyor.store import schema_changes
from conveyor.store.records import DeploymentRecord, ReleaseRecord

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


def backup_before(ctx: StepContext, target: ReleaseRecord) -> str:
    """The backup that holds the schema ``target`` ran with, in this environment.

    The rule: the target's schema was last in place after the newest deployment of it here that
    succeeded (a deploy or a rollback), or that was a with-database rollback whose ``database``
    step succeeded. The first successful migration run of a later deployment is the first
    migration the target's code never saw; the backup taken just before it is the one to
    restore. That run must have a backup, and its file must still be on disk."""
    service_id, environment = ctx.service.id, ctx.deployment.environment
    with ctx.runtime.db.read() as conn:
        deployments = store.list_deployments(conn, service_id=service_id, environment=environment, limit=10_000)
        since = max(
            (d.seq for d in deployments if d.release_id == target.id and _schema_in_place(conn, d)), default=None
        )
        if since is None:
            raise ConveyorError(
                f"{target.version} never served in {environment}, so no backup holds its schema",
                fix="roll back to a release that served there, or restore the database yourself",
            )
        runs = schema_changes.runs_in(conn, service_id, environment)
        seqs = {r.deployment_id: store.get_deployment(conn, r.deployment_id).seq for r in runs}
    after = sorted((r for r in runs if seqs[r.deployment_id] > since), key=lambda r: seqs[r.deployment_id])
    if not after:
        raise ConveyorError(
            f"no migration ran in {environment} after {target.version}, so there is no backup to restore",
            fix="roll back without --with-database: the schema is the one it ran with",
        )
    first = after[0]
    if not first.backup:
        raise ConveyorError(
            f"the first migration after {target.version} in {environment} (deployment {first.deployment_id[:8]}) "
            "ran without a backup, so no backup holds the schema it ran with",
            fix="configure migrate.down, or restore the database yourself and roll back without --with-database",
        )
    if not Path(first.backup).is_file():
        raise ConveyorError(
            f"the backup {first.backup} taken before deployment {first.deployment_id[:8]}'s migration is gone",
            fix="put the file back, or configure migrate.down",
        )
    return first.backup


def _schema_in_place(conn: Connection, d: DeploymentRecord) -> bool:
    """Whether the environment's schema was its release's after deployment ``d``."""
    if d.kind.value == "migrate":  # a migration alone changes the schema, not the release
        return False
    if d.state == DeploymentState.SUCCEEDED:
        return True
    steps = store.get_steps(conn, d.id) if d.with_database else []
    return any(s.name == "database" and s.state == StepState.SUCCEEDED for s in steps)


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
            backup = backup_before(ctx, target)
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
