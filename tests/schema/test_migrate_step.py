"""The migrate step against the real PostgreSQL: PGOPTIONS carry lock_timeout and statement_timeout
(after the environment's own PGOPTIONS) to the migration's sessions; each run is recorded with its
duration; a backup that fails, or writes nothing, fails the step before anything is migrated."""

from __future__ import annotations

from pathlib import Path

from tests.schema.sql_world import env_block, sql_world

SEEN = """\
CREATE TABLE seen AS SELECT current_setting('lock_timeout') AS lock_timeout,
    current_setting('statement_timeout') AS statement_timeout, current_setting('work_mem') AS work_mem;
"""


def test_pgoptions_reach_the_migration(tmp_path: Path, app_database: str) -> None:
    staging = env_block(
        "staging",
        port=None,
        body="""\
        env: {PGOPTIONS: '-c work_mem=7MB'}
        migrate: {run: ./scripts/migrate.sh, lock_timeout: 1500ms, statement_timeout: 5m, lint: false}
        """,
    )
    with sql_world(tmp_path, app_database, staging, {"001_seen.sql": SEEN}, local=False) as w:
        d = w.deploy("staging")
        assert d["state"] == "succeeded", d["reason"]
        # the environment's PGOPTIONS kept, the migrate step's timeouts after them
        assert w.sql("SELECT lock_timeout, statement_timeout, work_mem FROM seen") == [("1500ms", "5min", "7MB")]
        run = w.migration_run(d["id"])
        assert run is not None and run["ok"] == 1 and run["backup"] is None and run["maintenance"] == 0
        assert 0 < run["seconds"] < 30
        migrate = next(s for s in d["steps"] if s["name"] == "migrate")
        assert f"took {run['seconds']:.1f}s" in migrate["message"]


def test_a_failed_backup_migrates_nothing(tmp_path: Path, app_database: str) -> None:
    staging = env_block(
        "staging",
        port=None,
        body="""\
        migrate: {run: ./scripts/migrate.sh, lint: false}
        database: {backup: 'echo disk full >&2; exit 3', restore: 'true'}
        """,
    )
    with sql_world(tmp_path, app_database, staging, {"001_seen.sql": SEEN}, local=False) as w:
        d = w.deploy("staging")
        assert d["state"] == "failed"
        assert "the backup before the migration failed, so nothing was migrated" in d["reason"]
        assert "exited with code 3: disk full" in d["reason"]
        assert w.columns("seen") == [] and w.columns("applied") == []  # the migrate command never ran
        assert w.migration_run(d["id"]) is None


def test_a_backup_that_writes_nothing_migrates_nothing(tmp_path: Path, app_database: str) -> None:
    staging = env_block(
        "staging",
        port=None,
        body="""\
        migrate: {run: ./scripts/migrate.sh, lint: false}
        database: {backup: 'echo pretending', restore: 'true'}
        """,
    )
    with sql_world(tmp_path, app_database, staging, {"001_seen.sql": SEEN}, local=False) as w:
        d = w.deploy("staging")
        assert d["state"] == "failed"
        assert "succeeded but wrote nothing to" in d["reason"] and "$CONVEYOR_BACKUP" in d["reason"]
        assert w.columns("seen") == []


def test_a_statement_over_statement_timeout_is_cancelled_and_said_plainly(tmp_path: Path, app_database: str) -> None:
    staging = env_block(
        "staging",
        port=None,
        body="migrate: {run: ./scripts/migrate.sh, statement_timeout: 500ms, lint: false}\n",
    )
    slow = "CREATE TABLE slow (id bigint);\nSELECT pg_sleep(3);\n"
    with sql_world(tmp_path, app_database, staging, {"001_slow.sql": slow}, local=False) as w:
        d = w.deploy("staging")
        assert d["state"] == "failed"
        assert (
            "a statement of the migration ran longer than statement_timeout (500ms) and was cancelled; "
            "the previous release keeps serving; split the migration, or raise migrate.statement_timeout for it"
        ) in d["reason"]
        assert w.columns("slow") == []  # the migration's transaction was rolled back
        run = w.migration_run(d["id"])
        assert run is not None and run["ok"] == 0 and run["seconds"] < 2.5
