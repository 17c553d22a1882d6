"""An Alembic project's revisions through Conveyor's lint, on the real PostgreSQL: the `migrate:`
block of docs/database.md, read by Conveyor's spec loader; its `sql` command run by
``schema/sql_source.from_command`` in a real worktree of each release with the project's
environment; squawk's findings (``schema/squawk.lint``); then `run` and `down` for real."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
from tests.schema.projects import ALEMBIC_MIGRATE, AlembicProject, alembic_project, project_env

from conveyor.domain.migrations import DEFAULT_RULES, MigrationReport
from conveyor.schema import sql_source, squawk
from conveyor.spec.loader import parse_spec
from conveyor.spec.models import CommandSpec, MigrateSpec
from conveyor.vcs.git import GitRepo

CONFIG = "service: users\nenvironments:\n  production:\n    target: {kind: command, deploy: 'true'}\n" + "".join(
    f"    {line}\n" for line in ALEMBIC_MIGRATE.splitlines()
)


def migrate_spec(project: AlembicProject) -> MigrateSpec:
    text = (project.path / "conveyor.yml").read_text()
    migrate = parse_spec(text).environments["production"].migrate
    assert migrate is not None and migrate.sql is not None and migrate.down is not None
    return migrate


def worktree(project: AlembicProject, rev: str, root: Path) -> Path:
    path = root / f"wt-{rev}"
    GitRepo(project.path).add_worktree(path, project.shas[rev])
    return path


def release_report(migrate: MigrateSpec, workdir: Path, env: dict[str, str]) -> MigrationReport:
    found = sql_source.from_command(migrate, cwd=workdir, env=env)
    assert found.source == "sql command"
    return MigrationReport(found.source, found.sql, squawk.lint(found.sql, migrate.rules))


def sh(command: CommandSpec, workdir: Path, env: dict[str, str]) -> str:
    done = subprocess.run(["sh", "-c", command.run], cwd=workdir, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"`{command.run}` failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def columns(url: str, table: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    return [r[0] for r in rows]


def version(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return str(row[0])


def test_each_alembic_release_is_linted_as_the_process_document_asks(tmp_path: Path, app_database: str) -> None:
    project = alembic_project(tmp_path / "users", {"conveyor.yml": CONFIG})
    for rev in ("r1_users", "r2_email", "r3_drop_name", "r4_age"):
        project.add(rev)
    migrate = migrate_spec(project)
    assert migrate.rules == list(DEFAULT_RULES)  # the defaults gate
    env = project_env(app_database)

    # r1 on a new database (no alembic_version yet): its CREATE TABLE, nothing to say
    wt = worktree(project, "r1_users", tmp_path)
    first = release_report(migrate, wt, env)
    assert "CREATE TABLE users" in first.sql and first.findings == ()
    sh(migrate, wt, env)
    assert columns(app_database, "users") == ["id", "name"]

    # r2 (expand): a nullable column and CREATE INDEX CONCURRENTLY in autocommit_block: no finding,
    # and only r2's SQL (the database is at r1)
    wt = worktree(project, "r2_email", tmp_path)
    expand = release_report(migrate, wt, env)
    assert "CREATE INDEX CONCURRENTLY ix_users_email ON users (email);" in expand.sql
    assert "CREATE TABLE users" not in expand.sql
    assert expand.findings == ()
    sh(migrate, wt, env)
    assert columns(app_database, "users") == ["id", "name", "email"]
    with psycopg.connect(app_database) as conn:
        valid = conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = 'ix_users_email'"
        ).fetchone()
    assert valid == (True,)

    # r3 (contract): DROP COLUMN, destructive for the code before it
    wt = worktree(project, "r3_drop_name", tmp_path)
    contract = release_report(migrate, wt, env)
    assert [(f.rule, f.statement) for f in contract.findings] == [
        ("ban-drop-column", "ALTER TABLE users DROP COLUMN name;")
    ]
    assert contract.destructive == contract.findings
    assert "expand/contract" in contract.findings[0].fix
    sh(migrate, wt, env)
    assert columns(app_database, "users") == ["id", "email"]

    # r4: NOT NULL without a default and a plain CREATE INDEX: both findings, each with its statement and fix
    wt = worktree(project, "r4_age", tmp_path)
    bad = release_report(migrate, wt, env)
    assert [(f.rule, f.statement) for f in bad.findings] == [
        ("adding-required-field", "ALTER TABLE users ADD COLUMN age INTEGER NOT NULL;"),
        ("require-concurrent-index-creation", "CREATE INDEX ix_users_age ON users (age);"),
    ]
    assert [f.rule for f in bad.blocking(migrate.rules)] == [f.rule for f in bad.findings]
    assert bad.destructive == ()
    assert "nullable" in bad.findings[0].fix and "CONCURRENTLY" in bad.findings[1].fix
    sh(migrate, wt, env)
    assert columns(app_database, "users") == ["id", "email", "age"]

    # and once migrated, the same release has no SQL left to run
    assert release_report(migrate, wt, env).findings == ()


def test_alembic_down_goes_back_to_the_release_rolled_back_to(tmp_path: Path, app_database: str) -> None:
    project = alembic_project(tmp_path / "users", {"conveyor.yml": CONFIG})
    for rev in ("r1_users", "r2_email", "r3_drop_name"):
        project.add(rev)
    migrate = migrate_spec(project)
    assert migrate.down is not None
    env = project_env(app_database)
    r2, r3 = worktree(project, "r2_email", tmp_path), worktree(project, "r3_drop_name", tmp_path)
    sh(migrate, r3, env)
    assert version(app_database) == "r3_drop_name" and columns(app_database, "users") == ["id", "email"]

    # rolling r3 back to r2: `down` runs in r3's worktree, CONVEYOR_ROLLBACK_TO_WORKDIR is r2's
    sh(migrate.down, r3, {**env, "CONVEYOR_ROLLBACK_TO_WORKDIR": str(r2)})
    assert version(app_database) == "r2_email" and columns(app_database, "users") == ["id", "email", "name"]


def test_the_migration_sessions_take_lock_timeout_from_pgoptions(tmp_path: Path, app_database: str) -> None:
    """What the migrate step relies on: libpq reads PGOPTIONS, so `alembic upgrade` runs with it."""
    project = alembic_project(tmp_path / "users", {"conveyor.yml": CONFIG})
    project.add("r1_users")
    migrate = migrate_spec(project)
    log = tmp_path / "settings.log"
    env = project_env(
        app_database, PGOPTIONS="-c lock_timeout=10000 -c statement_timeout=3600000", APP_SETTINGS_LOG=str(log)
    )
    sh(migrate, worktree(project, "r1_users", tmp_path), env)
    assert log.read_text().splitlines() == ["lock_timeout=10s statement_timeout=1h"]
