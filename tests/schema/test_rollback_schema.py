"""A rollback that knows the schema (docs/database.md): v1 creates users(id, name), v2's migration
drops users.name (acknowledged). Rolling back to v1 is refused with the explanation (API 409,
CLI exit 1, nothing changed); the override is a release manager's, with a reason, audited; the
dashboard's dialog says it plainly and offers each role what it may do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.schema.schema_world import (
    SchemaSite,
    csrf,
    drop_name_release,
    start_schema_site,
    stop_schema_site,
)

EXPLANATION = (
    "v1.0.0's code expects a schema that v2.0.0's migration changed: "
    "ALTER TABLE users DROP COLUMN name (ban-drop-column)"
)


@pytest.fixture
def site(tmp_path: Path, app_database: str) -> Iterator[SchemaSite]:
    s = start_schema_site(tmp_path, f"sqlite:///{tmp_path / 'conveyor.db'}", app_database)
    try:
        s.deploy("v1.0.0")
        drop_name_release(s)
        s.deploy("v2.0.0", acknowledge=True)
        assert s.columns() == ["id"]
        yield s
    finally:
        stop_schema_site(s)


def _unchanged(site: SchemaSite, before: list[dict[str, Any]]) -> None:
    assert site.server.deployments() == before
    serving = site.serving()
    assert serving is not None and serving["version"] == "v2.0.0", serving
    assert site.columns() == ["id"]


def test_a_rollback_over_a_dropped_column_is_refused_with_the_explanation(site: SchemaSite) -> None:
    before = site.server.deployments()
    refused = site.as_user("eddie", "POST", "/rollbacks", json={"environment": "staging", "to": "v1.0.0"})
    assert refused.status_code == 409, refused.text
    message = refused.json()["message"]
    assert message.startswith(EXPLANATION), message
    assert "--with-database" in refused.json()["fix"] and "--override-schema --reason" in refused.json()["fix"]
    cli = site.cli("eddie", "rollback", "staging")  # the previous release: v1.0.0
    assert cli.returncode == 1, cli.stdout
    assert EXPLANATION in " ".join(cli.stderr.split()), cli.stderr
    _unchanged(site, before)


def test_the_override_is_a_release_managers_with_a_reason_and_audited(site: SchemaSite) -> None:
    before = site.server.deployments()
    body = {"environment": "staging", "to": "v1.0.0", "override_schema": True, "reason": "name unused"}
    by_engineer = site.as_user("eddie", "POST", "/rollbacks", json=body)
    assert by_engineer.status_code == 403, by_engineer.text
    assert "only a release manager may" in by_engineer.json()["message"]
    forbidden = site.audit("forbidden")
    assert forbidden and forbidden[0]["details"]["attempted"] == "rollback.schema_override"
    cli = site.cli("eddie", "rollback", "staging", "--override-schema", "--reason", "name unused")
    assert cli.returncode == 1 and "only a release manager may" in cli.stderr
    no_reason = site.as_user("rita", "POST", "/rollbacks", json={**body, "reason": " "})
    assert no_reason.status_code == 400 and "needs a reason" in no_reason.json()["message"], no_reason.text
    both = site.as_user("rita", "POST", "/rollbacks", json={**body, "with_database": True})
    assert both.status_code == 400, both.text
    _unchanged(site, before)

    done = site.cli("rita", "rollback", "staging", "--override-schema", "--reason", "name unused", "--wait", "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    serving = site.serving()
    assert serving is not None and serving["version"] == "v1.0.0"
    assert site.columns() == ["id"]  # the code alone went back
    override = site.audit("rollback.schema_override")
    assert len(override) == 1 and override[0]["actor"] == "rita", override
    details = override[0]["details"]
    assert details["reason"] == "name unused" and details["to"] == "v1.0.0" and details["from"] == "v2.0.0"
    [change] = details["changes"]
    assert change["version"] == "v2.0.0"
    assert [(f["rule"], f["statement"]) for f in change["findings"]] == [
        ("ban-drop-column", "ALTER TABLE users DROP COLUMN name;")
    ]


def test_the_dialog_says_it_plainly_and_offers_each_role_what_it_may_do(site: SchemaSite) -> None:
    params = {"environment": "staging", "to": "v1.0.0"}
    with site.dashboard("rita") as rita:
        page = rita.get("/rollback/changes", params=params)
        assert page.status_code == 200, page.text
        text = " ".join(page.text.split())
        assert 'data-testid="schema-gap"' in text and "no database migration is undone" not in text
        assert "ALTER TABLE users DROP COLUMN name;" in text and "ban-drop-column" in text
        assert "v2.0.0's migration" in text
        assert 'data-testid="with-database"' in text and 'data-testid="override"' in text
        steps = ["prepare", "maintenance_on", "database", "rollout", "maintenance_off", "announce"]
        assert [s for s in steps if f"<strong>{s}</strong>" in text] == steps
        assert "<code>migrate.down</code> of v2.0.0" in text
    with site.dashboard("eddie") as eddie:
        text = " ".join(eddie.get("/rollback/changes", params=params).text.split())
        assert 'data-testid="schema-gap"' in text and 'data-testid="with-database"' in text
        assert 'data-testid="override"' not in text  # not a release manager
        token = csrf(eddie.get("/rollback", params={"environment": "staging"}).text)
        forged = {**params, "schema_choice": "override", "reason": "x", "csrf_token": token}
        refused = eddie.post("/rollback", data=forged, follow_redirects=False)
        assert refused.status_code == 403, refused.text
        plain = eddie.post("/rollback", data={**params, "csrf_token": token}, follow_redirects=False)
        assert plain.status_code == 409 and "v2.0.0" in plain.text, plain.text
    with site.dashboard("carl") as carl:  # may not deploy there: neither the dialog nor its parts
        assert carl.get("/rollback/changes", params=params).status_code == 403
        assert carl.get("/rollback", params={"environment": "staging"}).status_code == 403
    assert site.serving()["version"] == "v2.0.0"  # type: ignore[index]


def test_no_destructive_migration_no_refusal(tmp_path: Path, app_database: str) -> None:
    s = start_schema_site(tmp_path, f"sqlite:///{tmp_path / 'conveyor.db'}", app_database)
    try:
        s.deploy("v1.0.0")
        from tests.e2e.harness import commit

        commit(s.repo, {"db/migrations/0002_email.sql": "ALTER TABLE users ADD COLUMN email text;\n"}, "v2")
        s.deploy("main")
        with s.dashboard("eddie") as eddie:
            text = " ".join(
                eddie.get("/rollback/changes", params={"environment": "staging", "to": "v1.0.0"}).text.split()
            )
        assert 'data-testid="schema-gap"' not in text and 'data-testid="schema-ok"' in text
        assert "The database stays as it is" in text
        done = s.cli("eddie", "rollback", "staging", "--to", "v1.0.0", "--wait")
        assert done.returncode == 0, done.stderr + done.stdout
        assert s.columns() == ["id", "name", "email"]
    finally:
        stop_schema_site(s)


def test_the_explanation_names_each_release_and_statement() -> None:
    from conveyor.domain.migrations import Finding
    from conveyor.domain.schema_gap import FIX, SchemaChange, explain, gap_sentence

    drop = Finding("ban-drop-column", "m", "ALTER TABLE users\n  DROP COLUMN name;", 1, "fix")
    rename = Finding("renaming-table", "m", "ALTER TABLE orders RENAME TO purchases;", 3, "fix")
    changes = (SchemaChange("d1", "v1.4.0", (drop,)), SchemaChange("d2", "v1.5.0", (rename,)))
    assert gap_sentence("v1.3.0", changes[:1]) == (
        "v1.3.0's code expects a schema that v1.4.0's migration changed: "
        "ALTER TABLE users DROP COLUMN name (ban-drop-column). "
        "Rolling back the code alone would leave v1.3.0 reading what is no longer there"
    )
    both = explain("v1.3.0", changes)
    assert both.startswith("v1.3.0's code expects a schema that v1.4.0's and v1.5.0's migrations changed: ")
    assert "ALTER TABLE orders RENAME TO purchases (renaming-table)" in both and both.endswith(FIX)
