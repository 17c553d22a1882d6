"""A deploy that fails after its migration ran puts the previous code back, not the database: when
that migration was destructive, the deployment's reason says so (docs/database.md, "A failed deploy")."""

from __future__ import annotations

from pathlib import Path

from tests.schema.sql_world import commit, env_block, sql_world

SMOKE_OK = "#!/bin/sh\necho smoke ok\n"
SMOKE_FAILS = "#!/bin/sh\necho 'smoke: checkout answers 500'; exit 1\n"
V1 = {"001_users.sql": "CREATE TABLE users (id integer PRIMARY KEY, name text);\n"}
# the destructive rules are linted always; `rules: []` lets the lint hold nothing up here
PRODUCTION = """\
migrate: {run: ./scripts/migrate.sh, rules: []}
smoke: ./scripts/smoke.sh
"""


def test_a_smoke_failure_after_a_drop_column_says_the_database_was_not_taken_back(
    tmp_path: Path, app_database: str
) -> None:
    environments = env_block("production", port=None, body=PRODUCTION)
    with sql_world(tmp_path, app_database, environments, V1, local=False) as w:
        commit(w.repo, {"scripts/smoke.sh": SMOKE_OK}, "v1 smoke")
        first = w.deploy("production")
        assert first["state"] == "succeeded", first["reason"]
        commit(
            w.repo,
            {"db/002_drop_name.sql": "ALTER TABLE users DROP COLUMN name;\n", "scripts/smoke.sh": SMOKE_FAILS},
            "v2: drop users.name",
        )
        second = w.deploy("production")
        assert second["state"] == "rolled_back", second["reason"]
        reason = second["reason"]
        assert f"{first['version']} restored and serving" in reason
        assert "the database was not taken back" in reason
        assert "ALTER TABLE users DROP COLUMN name (ban-drop-column)" in reason
        assert w.columns("users") == ["id"]  # the migration ran; only the code went back


def test_a_failed_deploy_without_a_destructive_migration_says_nothing_of_the_schema(
    tmp_path: Path, app_database: str
) -> None:
    environments = env_block("production", port=None, body=PRODUCTION)
    with sql_world(tmp_path, app_database, environments, V1, local=False) as w:
        commit(w.repo, {"scripts/smoke.sh": SMOKE_OK}, "v1 smoke")
        assert w.deploy("production")["state"] == "succeeded"
        commit(
            w.repo,
            {"db/002_email.sql": "ALTER TABLE users ADD COLUMN email text;\n", "scripts/smoke.sh": SMOKE_FAILS},
            "v2: users.email",
        )
        second = w.deploy("production")
        assert second["state"] == "rolled_back" and "restored and serving" in second["reason"]
        assert "database was not taken back" not in second["reason"]
