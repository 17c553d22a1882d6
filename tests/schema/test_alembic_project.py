"""An Alembic project's revisions through Conveyor's lint, on the real PostgreSQL: the `migrate:`
block of docs/database.md, read by Conveyor's spec loader; its `sql` command run by
``schema/sql_source.from_command`` in a real worktree of each release with the project's
environment; squawk's findings (``schema/squawk.lint``); then `run` and `down` for real."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.conftest import PG_ADMIN_URL, wait_until
from tests.e2e.harness import SCRIPTS, Server
from tests.e2e.local import stop_agent
from tests.schema.projects import (
    ALEMBIC_MIGRATE,
    PG_DUMP_DATABASE,
    AlembicProject,
    alembic_project,
    alembic_web_project,
    project_env,
)

from conveyor.devserver import free_port
from conveyor.domain.migrations import DEFAULT_RULES, MigrationReport
from conveyor.schema import sql_source, squawk
from conveyor.spec.loader import parse_spec
from conveyor.spec.models import CommandSpec, MigrateSpec
from conveyor.vcs.git import GitRepo

CONFIG = "service: users\nenvironments:\n  production:\n    target: {kind: command, deploy: 'true'}\n" + "".join(
    f"    {line}\n" for line in (ALEMBIC_MIGRATE + PG_DUMP_DATABASE).splitlines()
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


def test_pg_dump_backup_and_restore_take_the_schema_back(tmp_path: Path, app_database: str) -> None:
    """database.backup before r3's DROP COLUMN, database.restore after it: the column and its data are back."""
    project = alembic_project(tmp_path / "users", {"conveyor.yml": CONFIG})
    for rev in ("r1_users", "r2_email", "r3_drop_name"):
        project.add(rev)
    spec = parse_spec((project.path / "conveyor.yml").read_text()).environments["production"]
    assert spec.migrate is not None and spec.database is not None
    assert spec.database.backup is not None and spec.database.restore is not None
    env = project_env(app_database, CONVEYOR_BACKUP=str(tmp_path / "backups" / "before-r3.dump"))
    (tmp_path / "backups").mkdir()
    sh(spec.migrate, worktree(project, "r2_email", tmp_path), env)
    with psycopg.connect(app_database) as conn:
        conn.execute("INSERT INTO users (name, email) VALUES ('Ada', 'ada@example.com')")

    sh(spec.database.backup, tmp_path, env)
    sh(spec.migrate, worktree(project, "r3_drop_name", tmp_path), env)
    assert columns(app_database, "users") == ["id", "email"]

    sh(spec.database.restore, tmp_path, env)
    assert version(app_database) == "r2_email" and columns(app_database, "users") == ["id", "name", "email"]
    with psycopg.connect(app_database) as conn:
        assert conn.execute("SELECT name, email FROM users").fetchall() == [("Ada", "ada@example.com")]


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
    assert log.read_text().splitlines() == ["upgrade head: lock_timeout=10s statement_timeout=1h"]


# --- end to end: a real Conveyor server deploys the Alembic project to staging, then production ---

TARGET = "{kind: command, deploy: ./scripts/deploy.sh, rollback: ./scripts/rollback.sh}"


@pytest.fixture
def production_database(app_database: str) -> Iterator[str]:
    """A second app database, production's (staging has ``app_database``)."""
    name = app_database.rsplit("/", 1)[1] + "_prod"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield app_database.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def e2e_config(effects: Path, staging_db: str, production_db: str) -> str:
    shared = project_env("", EFFECTS=str(effects), APP_SETTINGS_LOG=str(effects / "settings.log"))
    del shared["APP_DATABASE_URL"], shared["HOME"]
    migrate = "".join(f"    {line}\n" for line in ALEMBIC_MIGRATE.splitlines())
    return (
        "service: users\n"
        f"env: {json.dumps(shared)}\n"
        "environments:\n"
        "  staging:\n"
        f"    target: {TARGET}\n"
        f"    env: {{APP_DATABASE_URL: '{staging_db}'}}\n"
        f"{migrate}"
        "  production:\n"
        f"    target: {TARGET}\n"
        f"    env: {{APP_DATABASE_URL: '{production_db}'}}\n"
        "    gates: {staging_verified: true}\n"
        f"{migrate}"
    )


def deploy(server: Server, environment: str) -> dict[str, Any]:
    result: dict[str, Any] = server.ok("POST", "/deployments", json={"environment": environment, "ref": "main"})
    return result


def gate(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in deployment["gates"] if g["gate"] == name)


def test_a_release_adding_a_required_column_waits_for_a_release_manager_then_deploys(
    tmp_path: Path, app_database: str, production_database: str
) -> None:
    effects = tmp_path / "effects"
    effects.mkdir()
    files = {**SCRIPTS, "conveyor.yml": e2e_config(effects, app_database, production_database)}
    project = alembic_project(tmp_path / "users", files)
    project.add("r1_users")
    server = Server(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'c.db'}", poll_interval=0)
    server.start()
    try:
        server.ok("POST", "/services", json={"source": str(project.path)})
        # the first release: nothing to say, both environments get the table
        for environment in ("staging", "production"):
            done = server.wait_finished(deploy(server, environment)["id"])
            assert done["state"] == "succeeded", done
            assert "no finding in the migrations" in gate(done, "migrations")["reason"]
        assert columns(app_database, "users") == columns(production_database, "users") == ["id", "name"]

        # r4: NOT NULL without a default and a plain index: staging holds it with both findings
        project.add("r4_age")
        held = deploy(server, "staging")

        def pending_gate() -> dict[str, Any] | None:
            d = server.deployment(held["id"])
            return d if d["state"] == "pending" and any(g["gate"] == "migrations" for g in d["gates"]) else None

        reason = gate(wait_until(pending_gate, timeout=30, what="the migrations gate"), "migrations")
        assert not reason["passed"]
        assert "adding-required-field: `ALTER TABLE users ADD COLUMN age INTEGER NOT NULL;`" in reason["reason"]
        assert "require-concurrent-index-creation: `CREATE INDEX ix_users_age ON users (age);`" in reason["reason"]
        assert "age" not in columns(app_database, "users")  # nothing ran

        # a release manager acknowledges for the commit: staging deploys, the column exists
        ack = server.ok("POST", f"/deployments/{held['id']}/migrations/acknowledge", json={"reason": "empty table"})
        assert ack["unacknowledged"] == []
        done = server.wait_finished(held["id"])
        assert done["state"] == "succeeded", done
        assert columns(app_database, "users") == ["id", "name", "age"]

        # production: the same commit's acknowledgement covers it; staging's duration is under maintenance_over
        done = server.wait_finished(deploy(server, "production")["id"])
        assert done["state"] == "succeeded", done
        passed = gate(done, "migrations")
        assert passed["passed"] and "acknowledged by alice" in passed["reason"]
        assert "in staging" in passed["reason"]
        assert columns(production_database, "users") == ["id", "name", "age"]
        view = server.ok("GET", f"/deployments/{done['id']}/migrations")
        assert view["run"]["ok"] is True and view["run"]["seconds"] < 60
        assert [f["rule"] for f in view["report"]["findings"]] == [
            "adding-required-field",
            "require-concurrent-index-creation",
        ]
    finally:
        server.stop()
    # the four migrations (r1 and r4, staging and production) ran with the default lock_timeout and
    # statement_timeout (PGOPTIONS); the sql command's `alembic current` is no migration and got none
    sessions = (effects / "settings.log").read_text().splitlines()
    assert [s for s in sessions if s.startswith("upgrade")] == [
        "upgrade head: lock_timeout=10s statement_timeout=1h"
    ] * 4
    assert set(s for s in sessions if s.startswith("current")) == {"current: lock_timeout=0 statement_timeout=0"}


def test_the_docs_show_the_blocks_proven_here() -> None:
    """docs/database.md shows ALEMBIC_MIGRATE and PG_DUMP_DATABASE as written here; the `migrate`
    example of docs/conveyor-yml.md has the same `sql` and `down`."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    database = (docs / "database.md").read_text()
    assert f"```yaml\n{ALEMBIC_MIGRATE}```" in database
    assert textwrap.indent(f"```yaml\n{PG_DUMP_DATABASE}```", "   ") in database
    reference = (docs / "conveyor-yml.md").read_text()
    for line in ALEMBIC_MIGRATE.splitlines()[2:]:  # sql and down
        assert f"\n{line}\n" in reference, f"docs/conveyor-yml.md's migrate example lacks {line!r}"
    # and every migrate: or database: example of docs/database.md is valid in an environment
    blocks = [textwrap.dedent(b) for _, b in re.findall(r"^( *)```yaml\n(.*?)^\1```", database, re.M | re.S)]
    examples = [b for b in blocks if b.startswith(("migrate:", "database:"))]
    assert len(examples) == 4
    for example in examples:
        text = "service: shop\nenvironments:\n  production:\n    target: {kind: command, deploy: 'true'}\n"
        parse_spec(text + textwrap.indent(example, "    "))


def test_a_rollback_over_the_drop_column_revision_takes_the_database_back_with_alembic_down(
    tmp_path: Path, app_database: str
) -> None:
    """The contract revision (DROP COLUMN) deployed: a plain rollback is refused naming the
    statement; `rollback --with-database` runs the documented `down` (alembic downgrade to the
    target's head, in the worktree Conveyor gives), and the column is back under the older code."""
    shared = {k: v for k, v in project_env(app_database).items() if k != "HOME"}
    config = (
        "service: users\n"
        "run: python3 app.py --port $PORT\n"
        "health: {path: /healthz, interval: 100ms, successes: 2, timeout: 10s}\n"
        f"env: {json.dumps(shared)}\n"
        "environments:\n"
        "  production:\n"
        f"    target: {{kind: local, port: {free_port()}, replicas: 1}}\n"
        "    tag: {bump: minor}\n" + "".join(f"    {line}\n" for line in ALEMBIC_MIGRATE.splitlines())
    )
    project = alembic_web_project(tmp_path / "users", config)
    project.add("r1_users")
    project.add("r2_email")
    server = Server(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'c.db'}", poll_interval=0)
    server.start()
    try:
        server.ok("POST", "/services", json={"source": str(project.path)})
        first = server.wait_finished(deploy(server, "production")["id"])
        assert first["state"] == "succeeded", first

        project.add("r3_drop_name")
        held = deploy(server, "production")
        wait_until(lambda: server.ok("GET", f"/deployments/{held['id']}/migrations")["report"], timeout=60, what="lint")
        server.ok("POST", f"/deployments/{held['id']}/migrations/acknowledge", json={"reason": "name is unread"})
        second = server.wait_finished(held["id"])
        assert second["state"] == "succeeded", second
        assert columns(app_database, "users") == ["id", "email"]

        refused = server.api("POST", "/rollbacks", json={"environment": "production"})
        assert refused.status_code == 409, refused.text
        message = refused.json()["message"]
        assert f"{first['version']}'s code expects a schema that {second['version']}'s migration changed" in message
        assert "ALTER TABLE users DROP COLUMN name (ban-drop-column)" in message
        assert columns(app_database, "users") == ["id", "email"]  # nothing changed

        back = server.ok("POST", "/rollbacks", json={"environment": "production", "with_database": True})
        done = server.wait_finished(back["id"], timeout=90)
        assert done["state"] == "succeeded", done
        steps = {s["name"]: s for s in done["steps"]}
        assert list(steps)[:3] == ["prepare", "maintenance_on", "database"] and "maintenance_off" in steps
        assert "undone by migrate.down" in steps["database"]["message"]
        assert version(app_database) == "r2_email"
        assert columns(app_database, "users") == ["id", "email", "name"]
        status = server.ok("GET", "/status", params={"environment": "production"})
        assert status[0]["current"]["version"] == first["version"]
    finally:
        server.stop()
        stop_agent(server.home)
