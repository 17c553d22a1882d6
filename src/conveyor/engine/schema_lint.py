"""The lint of a deployment's migrations, before anything runs (docs/database.md).

``analyse`` finds the SQL the deployment's ``migrate`` would run (``schema/sql_source.py``),
lints it with squawk and records the report with the deployment; the ``migrations`` gate judges
it. It runs while the deployment is pending (the gate workflow) and again from ``prepare`` if
nothing was recorded. With a ``migrate.sql`` command it needs the built worktree: it makes it
exactly as the prepare step does (the same worktree and the same durable build run), so the
prepare step that follows finds it built and does not build twice.
"""

from __future__ import annotations

from conveyor.domain.migrations import MigrationReport
from conveyor.engine.context import StepContext, load_context
from conveyor.engine.worktrees import BUILD_TIMEOUT
from conveyor.errors import ConveyorError
from conveyor.runtime import Runtime
from conveyor.schema import sql_source, squawk
from conveyor.store import deployments as store
from conveyor.store import schema_changes


def _sql(ctx: StepContext) -> sql_source.ReleaseSql:
    migrate = ctx.env_spec.migrate
    assert migrate is not None
    if migrate.sql is None:
        with ctx.runtime.db.read() as conn:
            serving = store.current_release(conn, ctx.service.id, ctx.deployment.environment)
        return sql_source.from_files(ctx.repo, serving.sha if serving else None, ctx.deployment.sha)
    workdir = ctx.workdir()
    if not workdir.is_symlink():
        ctx.repo.add_worktree(workdir, ctx.deployment.sha)
    if ctx.spec.build is not None:  # the prepare step's own build run: prepare picks it up, done
        built = ctx.run("prepare", ctx.spec.build, default_timeout=BUILD_TIMEOUT, rerun_interrupted=True)
        if not built.ok:
            raise ConveyorError(f"the build before migrate.sql failed: {built.message}")
    return sql_source.from_command(migrate, cwd=workdir, env=ctx.command_env(workdir=workdir))


def lint_context(ctx: StepContext) -> MigrationReport:
    """The report of ``ctx``'s deployment, made now (not recorded)."""
    migrate = ctx.env_spec.migrate
    if migrate is None or not migrate.lint:
        return MigrationReport("none", "")
    try:
        found = _sql(ctx)
        findings = squawk.lint(found.sql, migrate.rules)
    except ConveyorError as exc:
        return MigrationReport("none", "", error=str(exc))
    return MigrationReport(found.source, found.sql, findings, files=found.files)


def analyse(rt: Runtime, deployment_id: str, *, again: bool = False) -> MigrationReport:
    """The deployment's report: the one recorded, or a new one, recorded now."""
    if not again:
        with rt.db.read() as conn:
            known = schema_changes.report_for(conn, deployment_id)
        if known is not None:
            return known
    ctx = load_context(rt, deployment_id)
    report = lint_context(ctx)
    with rt.db.begin() as conn:
        schema_changes.save_report(
            conn,
            deployment_id=deployment_id,
            service_id=ctx.service.id,
            environment=ctx.deployment.environment,
            sha=ctx.deployment.sha,
            report=report,
            now=rt.clock.now(),
        )
    return report
