"""migrate: the environment's migration command, run exactly once per deployment (docs/database.md).

- Its commands get ``PGOPTIONS`` with ``lock_timeout`` and ``statement_timeout`` (after any
  PGOPTIONS the environment already sets), so a migration that waits on a lock fails fast instead
  of stopping every query behind it.
- A deploy (kind ``deploy`` or ``migrate``) in an environment with ``database.backup`` runs that
  command first, with ``CONVEYOR_BACKUP`` naming the file to write; a backup that fails fails the
  step before anything is migrated.
- With ``deploy --maintenance`` the environment's maintenance mode is on during the migration and
  off after it, whatever its outcome (also when the step runs again after a crash).
- Each run is recorded (migration_runs): when it started, how long it took, whether it passed,
  maintenance, the backup; the maintenance-window gate reads staging's duration from there.
"""

from __future__ import annotations

from pathlib import Path

from conveyor.engine.context import StepContext, StepOutcome
from conveyor.engine.maintenance import maintenance
from conveyor.engine.process import InterruptedRun, ended
from conveyor.engine.steps import step
from conveyor.engine.steps.extra_env import pg_options, with_env
from conveyor.spec.durations import format_duration
from conveyor.store import schema_changes

MIGRATE_TIMEOUT = 600.0
BACKUP_TIMEOUT = 3600.0
BACKED_UP_KINDS = ("deploy", "migrate")
LOCK_TIMEOUT_TEXT = "canceling statement due to lock timeout"
STATEMENT_TIMEOUT_TEXT = "canceling statement due to statement timeout"


def backup_path(ctx: StepContext) -> Path:
    """Where the backup before this deployment's migration goes (and stays, for a restore)."""
    state = ctx.settings.state_dir / ctx.service.name / ctx.deployment.environment
    return state / "backups" / f"{ctx.deployment.id}.dump"


def _backup(ctx: StepContext) -> tuple[str | None, StepOutcome | None]:
    """Run ``database.backup`` when this deployment takes one: (its path, a failure or None)."""
    database = ctx.env_spec.database
    if database is None or database.backup is None or ctx.deployment.kind.value not in BACKED_UP_KINDS:
        return None, None
    path = backup_path(ctx)
    path.parent.mkdir(parents=True, exist_ok=True)
    command = database.backup
    # a backup is safe to take again when the server died under it: nothing was migrated yet
    outcome = with_env(ctx, {"CONVEYOR_BACKUP": str(path)}).run(
        "backup", command, default_timeout=BACKUP_TIMEOUT, rerun_interrupted=True
    )
    if not outcome.ok:
        message = f"the backup before the migration failed, so nothing was migrated: {outcome.message}"
        return None, StepOutcome(False, message, outcome.output, outcome.cancelled)
    if not path.is_file() or path.stat().st_size == 0:
        message = (
            f"the backup command `{command.run}` succeeded but wrote nothing to {path}; nothing was migrated "
            '(it must write the backup to the file $CONVEYOR_BACKUP names, e.g. pg_dump -Fc -f "$CONVEYOR_BACKUP")'
        )
        return None, StepOutcome(False, message, outcome.output)
    return str(path), None


def _seconds(run_dir: Path, fallback: float) -> float:
    """How long the durable run took, from its own files (right across a server restart)."""
    intent = run_dir / "intent"
    ends = [run_dir / name for name in ("rc", "verdict") if (run_dir / name).exists()]
    if intent.exists() and ends and ended(run_dir):
        return max(0.0, min(e.stat().st_mtime for e in ends) - intent.stat().st_mtime)
    return fallback


def _finished(run_dir: Path) -> bool:
    return ended(run_dir)


def _explain(ctx: StepContext, outcome: StepOutcome) -> StepOutcome:
    """A migration stopped by PostgreSQL's lock_timeout or statement_timeout, said plainly."""
    spec = ctx.env_spec.migrate
    assert spec is not None
    if outcome.ok or outcome.cancelled:
        return outcome
    if LOCK_TIMEOUT_TEXT in outcome.output:
        message = (
            f"the migration waited longer than lock_timeout ({format_duration(spec.lock_timeout)}) for a lock "
            "another session holds; nothing was migrated, the previous release keeps serving; "
            "retry when the lock is free"
        )
        return StepOutcome(False, message, outcome.output)
    if STATEMENT_TIMEOUT_TEXT in outcome.output:
        message = (
            f"a statement of the migration ran longer than statement_timeout "
            f"({format_duration(spec.statement_timeout)}) and was cancelled; the previous release keeps serving; "
            "split the migration, or raise migrate.statement_timeout for it"
        )
        return StepOutcome(False, message, outcome.output)
    return outcome


def _record_start(ctx: StepContext, backup: str | None) -> None:
    with ctx.runtime.db.begin() as conn:
        schema_changes.start_run(
            conn,
            deployment_id=ctx.deployment.id,
            service_id=ctx.service.id,
            environment=ctx.deployment.environment,
            sha=ctx.deployment.sha,
            release_id=ctx.release.id if ctx.release else None,
            now=ctx.runtime.clock.now(),
            maintenance=ctx.deployment.maintenance,
            backup=backup,
        )


def _record_end(ctx: StepContext, run_dir: Path, ok: bool) -> float:
    with ctx.runtime.db.begin() as conn:
        run = schema_changes.run_for(conn, ctx.deployment.id)
        fallback = (ctx.runtime.clock.now() - run.started_at).total_seconds() if run else 0.0
        seconds = _seconds(run_dir, fallback)
        schema_changes.finish_run(conn, ctx.deployment.id, seconds=seconds, ok=ok)
    return seconds


@step("migrate")
def migrate(ctx: StepContext) -> StepOutcome:
    spec = ctx.env_spec.migrate
    if spec is None:
        return StepOutcome(True, "no migrate command configured")
    run_dir = ctx.settings.runs_dir / ctx.deployment.id / "migrate"
    backup, failed = _backup(ctx)
    if failed is not None:
        return failed
    window = ctx.deployment.maintenance
    notes: list[str] = []
    if window and not _finished(run_dir):  # after a crash past the migration, never turn it on again
        notes.append(maintenance(ctx, on=True))
    _record_start(ctx, backup)
    stuck: str | None = None
    try:
        # never run twice: if the server died mid-migration, the run is picked up, not repeated
        outcome = with_env(ctx, {"PGOPTIONS": pg_options(ctx)}).run("migrate", spec, default_timeout=MIGRATE_TIMEOUT)
    except InterruptedRun as exc:
        outcome = StepOutcome(False, str(exc))
    finally:
        if window:
            try:
                notes.append(maintenance(ctx, on=False))
            except Exception as exc:  # the migration's outcome still gets recorded and told
                stuck = f"{type(exc).__name__}: {exc}"
    seconds = _record_end(ctx, run_dir, ok=outcome.ok)
    outcome = _explain(ctx, outcome)
    extra = [f"took {seconds:.1f}s"]
    if backup:
        extra.append(f"backup {backup}")
    extra.extend(notes)
    message = f"{outcome.message} ({'; '.join(extra)})"
    if stuck is not None:
        env = ctx.deployment.environment
        message += (
            f"; maintenance mode could not be turned off, {env} may still answer 503: {stuck} "
            f"(turn it off with `conveyor maintenance {env} off`)"
        )
        return StepOutcome(False, message, outcome.output)
    return StepOutcome(outcome.ok, message, outcome.output, outcome.cancelled)
