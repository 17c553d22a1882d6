"""A Django project's migrations through Conveyor's lint, on the real PostgreSQL: the `migrate:`
block of docs/database.md (its `sql` a loop of `manage.py sqlmigrate` over the migrations
`showmigrations --plan` lists as not applied), read by Conveyor's spec loader, run by
``schema/sql_source.from_command`` in real worktrees, linted by ``schema/squawk.lint``; then
`run` and `down` for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
from tests.conftest import wait_until
from tests.e2e.harness import SCRIPTS, Server
from tests.schema.projects import DJANGO_MIGRATE, DjangoProject, django_project, project_env

from conveyor.domain.migrations import MigrationReport
from conveyor.schema import sql_source, squawk
from conveyor.spec.loader import parse_spec
from conveyor.spec.models import CommandSpec, MigrateSpec
from conveyor.vcs.git import GitRepo

CONFIG = "service: shop\nenvironments:\n  production:\n    target: {kind: command, deploy: 'true'}\n" + "".join(
    f"    {line}\n" for line in DJANGO_MIGRATE.splitlines()
)


def worktree(project: DjangoProject, name: str, root: Path) -> Path:
    path = root / f"wt-{name}"
    GitRepo(project.path).add_worktree(path, project.shas[name])
    return path


def release_report(migrate: MigrateSpec, workdir: Path, env: dict[str, str]) -> MigrationReport:
    found = sql_source.from_command(migrate, cwd=workdir, env=env)
    return MigrationReport(found.source, found.sql, squawk.lint(found.sql, migrate.rules))


def sh(command: CommandSpec, workdir: Path, env: dict[str, str]) -> None:
    done = subprocess.run(["sh", "-c", command.run], cwd=workdir, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"`{command.run}` failed:\n{done.stdout}\n{done.stderr}"


def columns(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'shop_customer' "
            "ORDER BY ordinal_position"
        ).fetchall()
    return [r[0] for r in rows]


def indexes(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'shop_customer' ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def test_django_migrations_are_linted_through_sqlmigrate(tmp_path: Path, app_database: str) -> None:
    project = django_project(tmp_path / "shop", {"conveyor.yml": CONFIG})
    for name in ("0001_initial", "0002_customer_email", "0003_customer_email_idx"):
        project.add(name)
    migrate = parse_spec((project.path / "conveyor.yml").read_text()).environments["production"].migrate
    assert migrate is not None and migrate.sql is not None and migrate.down is not None
    env = project_env(app_database)

    # the first release on a new database: 0001's CREATE TABLE, nothing to say
    first_wt = worktree(project, "0001_initial", tmp_path)
    first = release_report(migrate, first_wt, env)
    assert 'CREATE TABLE "shop_customer"' in first.sql and first.findings == ()
    sh(migrate, first_wt, env)
    assert columns(app_database) == ["id", "name"]

    # the next release brings 0002 (AddField NOT NULL, no default) and 0003 (AddIndex): the loop
    # prints both migrations' SQL (not 0001's, applied), and squawk finds each problem in its statement
    wt = worktree(project, "0003_customer_email_idx", tmp_path)
    report = release_report(migrate, wt, env)
    assert 'CREATE TABLE "shop_customer"' not in report.sql
    assert report.sql.index("-- Add field email to customer") < report.sql.index("-- Create index")
    assert [(f.rule, f.statement) for f in report.findings] == [
        ("adding-required-field", 'ALTER TABLE "shop_customer" ADD COLUMN "email" varchar(200) NOT NULL;'),
        ("require-concurrent-index-creation", 'CREATE INDEX "shop_customer_email_idx" ON "shop_customer" ("email");'),
    ]
    assert report.blocking(migrate.rules) == report.findings and report.destructive == ()
    sh(migrate, wt, env)
    assert columns(app_database) == ["id", "name", "email"]
    assert "shop_customer_email_idx" in indexes(app_database)
    assert release_report(migrate, wt, env).sql == ""  # nothing left to apply: no SQL, no finding

    # rolling back to the first release: `down` migrates the app back to its last migration there
    sh(migrate.down, wt, {**env, "CONVEYOR_ROLLBACK_TO_WORKDIR": str(first_wt)})
    assert columns(app_database) == ["id", "name"]
    assert "shop_customer_email_idx" not in indexes(app_database)


def test_the_docs_show_the_block_proven_here() -> None:
    database = (Path(__file__).resolve().parents[2] / "docs" / "database.md").read_text()
    assert f"```yaml\n{DJANGO_MIGRATE}```" in database


def test_conveyor_migrate_runs_the_django_migrations_alone_once_acknowledged(tmp_path: Path, app_database: str) -> None:
    """The document's "run migrations manually" with the Django project, through the CLI and a real
    server: `conveyor migrate production --ref main` is held by the migrations gate with both
    findings (`conveyor migrations show`), runs once acknowledged (`conveyor migrations
    acknowledge`), and the release serving stays the same."""
    effects = tmp_path / "effects"
    effects.mkdir()
    shared = {k: v for k, v in project_env(app_database, EFFECTS=str(effects)).items() if k != "HOME"}
    target = "{kind: command, deploy: ./scripts/deploy.sh, rollback: ./scripts/rollback.sh}"
    config = (
        f"service: shop\nenv: {json.dumps(shared)}\nenvironments:\n  production:\n    target: {target}\n"
        + "".join(f"    {line}\n" for line in DJANGO_MIGRATE.splitlines())
    )
    project = django_project(tmp_path / "shop", {**SCRIPTS, "conveyor.yml": config})
    project.add("0001_initial")
    server = Server(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'c.db'}", poll_interval=0)
    server.start()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "conveyor", *args], env=server.env(), capture_output=True, text=True, timeout=120
        )

    try:
        server.ok("POST", "/services", json={"source": str(project.path)})
        first = server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
        assert server.wait_finished(first["id"])["state"] == "succeeded"
        serving = (effects / "serving-production").read_text()
        assert columns(app_database) == ["id", "name"]

        project.add("0002_customer_email")
        project.add("0003_customer_email_idx")
        asked = cli("migrate", "production", "--ref", "main", "--json")
        assert asked.returncode == 0, asked.stderr
        migration = json.loads(asked.stdout)
        assert migration["kind"] == "migrate"
        wait_until(
            lambda: server.ok("GET", f"/deployments/{migration['id']}/migrations")["unacknowledged"],
            timeout=60,
            what="the lint's findings",
        )
        shown = cli("migrations", "show", migration["id"][:8])
        assert shown.returncode == 0, shown.stderr
        assert "adding-required-field" in shown.stdout and "require-concurrent-index-creation" in shown.stdout
        assert server.deployment(migration["id"])["state"] == "pending"
        assert columns(app_database) == ["id", "name"]  # nothing ran

        acked = cli("migrations", "acknowledge", migration["id"][:8], "--reason", "shop_customer is empty")
        assert acked.returncode == 0, acked.stderr
        done = server.wait_finished(migration["id"])
        assert done["state"] == "succeeded", done
        assert [s["name"] for s in done["steps"]] == ["prepare", "migrate"]
        assert columns(app_database) == ["id", "name", "email"]
        assert "shop_customer_email_idx" in indexes(app_database)
        assert (effects / "serving-production").read_text() == serving  # the serving release is unchanged
    finally:
        server.stop()
