"""database.backup / database.restore with pg_dump and pg_restore (docs/database.md): every deploy's
migration is preceded by a backup (its path recorded with the run), and ``rollback --with-database``
restores the backup taken before the first migration after the release rolled back to: v2 dropped
users.name, the rollback to v1 brings the column and its data back and v1 serves again. A backup
file that is gone fails the database step with a clear message and leaves maintenance mode on."""

from __future__ import annotations

from pathlib import Path

import httpx
from tests.e2e.harness import commit, free_port
from tests.e2e.local import get_version
from tests.schema.sql_world import env_block, sql_world

USERS = "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);\nINSERT INTO users VALUES (1, 'ada');\n"
DROP_NAME = "ALTER TABLE users DROP COLUMN name;\n"
DATABASE = """\
migrate: {run: ./scripts/migrate.sh, lint: false}
database:
  backup: pg_dump -Fc -f "$CONVEYOR_BACKUP" "$APP_DB"
  restore: pg_restore --clean --if-exists -d "$APP_DB" "$CONVEYOR_BACKUP"
"""
WITH_DATABASE = ["prepare", "maintenance_on", "database", "rollout", "maintenance_off", "announce"]


def test_with_database_restores_the_backup_taken_before_the_drop(tmp_path: Path, app_database: str) -> None:
    port = free_port()
    with sql_world(
        tmp_path, app_database, env_block("staging", port=port, body=DATABASE), {"001_users.sql": USERS}, local=True
    ) as w:
        v1_deploy = w.deploy("staging")
        assert v1_deploy["state"] == "succeeded", v1_deploy["reason"]
        v1 = get_version(port)
        commit(w.repo, {"db/002_drop_name.sql": DROP_NAME}, "users lose their name")
        v2_deploy = w.deploy("staging")
        assert v2_deploy["state"] == "succeeded", v2_deploy["reason"]
        assert w.columns("users") == ["id"]

        # each deploy's backup, recorded with its migration run, under the state dir
        backups = w.server.home.resolve() / "state" / "web" / "staging" / "backups"
        for d in (v1_deploy, v2_deploy):
            run = w.migration_run(d["id"])
            assert run is not None and run["ok"] == 1 and run["backup"] == str(backups / f"{d['id']}.dump")
            assert f"backup {run['backup']}" in next(s for s in d["steps"] if s["name"] == "migrate")["message"]
        before_drop = Path(w.migration_run(v2_deploy["id"])["backup"])
        assert before_drop.stat().st_size > 0

        # the backup is gone: the database step says so, changes nothing, and maintenance stays on
        aside = before_drop.rename(tmp_path / "aside.dump")
        r = w.server.ok("POST", "/rollbacks", json={"environment": "staging", "with_database": True})
        failed = w.server.wait_finished(r["id"], timeout=90)
        assert failed["state"] == "failed"
        assert f"the backup {before_drop}, taken before the first migration after {v1}, is gone" in failed["reason"]
        assert "maintenance mode stays on in staging" in failed["reason"]
        assert w.columns("users") == ["id"]
        page = httpx.get(f"http://127.0.0.1:{port}/version", timeout=5)
        assert page.status_code == 503 and page.headers["retry-after"]

        aside.rename(before_drop)
        r = w.server.ok("POST", "/rollbacks", json={"environment": "staging", "with_database": True})
        d = w.server.wait_finished(r["id"], timeout=90)
        assert d["state"] == "succeeded", d["reason"]
        assert [s["name"] for s in d["steps"]] == WITH_DATABASE
        assert all(s["state"] == "succeeded" for s in d["steps"]), d["steps"]
        database = next(s for s in d["steps"] if s["name"] == "database")
        assert (
            database["message"]
            == f"database restored from {before_drop}, the backup taken before the first migration after {v1}"
        )
        # the column and its data are back, with v1's bookkeeping; v1 serves again
        assert w.columns("users") == ["id", "name"]
        assert w.sql("SELECT id, name FROM users") == [(1, "ada")]
        assert w.sql("SELECT name FROM applied ORDER BY name") == [("001_users.sql",)]
        assert get_version(port) == v1
