"""A lock held by another session makes the migrate step fail fast on lock_timeout, with the
message of docs/database.md; nothing is migrated and the previous release keeps serving (the demo
app on a local target, behind the agent's built-in router, under a steady client). Once the lock
is free, the same release deploys."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
from tests.e2e.harness import commit, free_port
from tests.e2e.local import Load, get_version
from tests.schema.sql_world import env_block, sql_world

USERS = "CREATE TABLE users (id bigint PRIMARY KEY, name text);\nINSERT INTO users VALUES (1, 'ada');\n"
NICKNAME = "ALTER TABLE users ADD COLUMN nickname text;\n"
MESSAGE = (
    "the migration waited longer than lock_timeout (1s) for a lock another session holds; nothing was migrated, "
    "the previous release keeps serving; retry when the lock is free"
)
UPPER_BOUND_SECONDS = 5.0  # lock_timeout (1s) plus psql start-up and Conveyor's bookkeeping


def test_a_held_lock_fails_the_migration_fast_and_the_previous_release_keeps_serving(
    tmp_path: Path, app_database: str
) -> None:
    port = free_port()
    staging = env_block(
        "staging", port=port, body="migrate: {run: ./scripts/migrate.sh, lock_timeout: 1s, lint: false}"
    )
    with sql_world(tmp_path, app_database, staging, {"001_users.sql": USERS}, local=True) as w:
        first = w.deploy("staging")
        assert first["state"] == "succeeded", first["reason"]
        v1 = get_version(port)
        commit(w.repo, {"db/002_nickname.sql": NICKNAME}, "users get a nickname")
        with psycopg.connect(app_database) as holder:  # a transaction stays open: the lock is held until rollback
            holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            load = Load(port, rate=50).start()
            started = time.monotonic()
            d = w.deploy("staging")
            elapsed = time.monotonic() - started
            load.stop()
            holder.rollback()
        assert d["state"] == "failed"
        assert d["reason"].startswith(f"migrate: {MESSAGE} (took "), d["reason"]
        migrate = next(s for s in d["steps"] if s["name"] == "migrate")
        run = w.migration_run(d["id"])
        assert run is not None and run["ok"] == 0
        # it waited for the lock (lock_timeout: 1s), then gave up within a few seconds
        assert 1.0 <= run["seconds"] < UPPER_BOUND_SECONDS, run
        assert migrate["duration_ms"] < UPPER_BOUND_SECONDS * 1000, migrate
        print(
            f"\nlock timeout: migrate step {migrate['duration_ms']} ms, migration run {run['seconds']:.2f}s, "
            f"whole deployment {elapsed:.2f}s"
        )
        assert next(s for s in d["steps"] if s["name"] == "rollout")["state"] in ("pending", "skipped")
        assert "nickname" not in w.columns("users")
        assert w.sql("SELECT name FROM applied ORDER BY name") == [("001_users.sql",)]
        # the previous release served every request, before, during and after
        assert get_version(port) == v1
        assert load.results and load.failures == [], load.failures[:5]
        assert {version for _when, _status, version in load.results} == {v1}

        again = w.deploy("staging")  # the lock is free now
        assert again["state"] == "succeeded", again["reason"]
        assert "nickname" in w.columns("users") and get_version(port) != v1
