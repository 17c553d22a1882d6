"""`conveyor migrate ENV` (docs/cli.md, docs/database.md): the migration alone, through the same
gates and audit as a deploy; the serving release stays as it is, nothing is tagged. And
`deploy --maintenance` refused where there is no maintenance mode or no migration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.harness import commit, git
from tests.schema.schema_world import SchemaSite, csrf, start_schema_site, stop_schema_site

ADD_EMAIL = "ALTER TABLE users ADD COLUMN email text;\n"


@pytest.fixture
def site(tmp_path: Path, app_database: str) -> Iterator[SchemaSite]:
    s = start_schema_site(tmp_path, f"sqlite:///{tmp_path / 'conveyor.db'}", app_database)
    try:
        yield s
    finally:
        stop_schema_site(s)


def test_migrate_runs_the_migration_alone_and_the_serving_release_stays(site: SchemaSite) -> None:
    v1 = site.deploy("v1.0.0")
    assert site.columns() == ["id", "name"]
    commit(site.repo, {"db/migrations/0002_email.sql": ADD_EMAIL}, "v2: users.email (expand)")
    v2_sha = git(site.repo, "rev-parse", "HEAD")
    tags_before = git(site.repo, "tag", "--list").split()
    runs_before = [e for e in site.effects() if e.startswith("migrate run")]

    done = site.cli("eddie", "migrate", "staging", "--ref", "main", "--wait", "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    d = json.loads(done.stdout)
    assert (d["kind"], d["state"], d["sha"]) == ("migrate", "succeeded", v2_sha), d
    assert [s["name"] for s in d["steps"]] == ["prepare", "migrate"]

    assert site.columns() == ["id", "name", "email"]  # the expand step ran
    runs = [e for e in site.effects() if e.startswith("migrate run")]
    assert len(runs) == len(runs_before) + 1, site.effects()  # once
    assert [e for e in site.effects() if e.startswith("migrated 0002")] == ["migrated 0002_email.sql staging"]
    serving = site.serving()
    assert serving is not None and serving["sha"] == v1["sha"], serving  # v1 still serves
    assert git(site.repo, "tag", "--list").split() == tags_before  # nothing tagged
    requested = site.audit("migration.requested")
    assert requested and requested[0]["actor"] == "eddie" and requested[0]["subject"] == d["id"]
    assert requested[0]["details"]["serving"] == v1["version"]


def test_migrate_defaults_to_the_serving_release(site: SchemaSite) -> None:
    refused = site.cli("eddie", "migrate", "staging")
    assert refused.returncode == 1 and "nothing serves in staging" in refused.stderr, refused.stderr
    v1 = site.deploy("v1.0.0")
    done = site.cli("eddie", "migrate", "staging", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    d = json.loads(done.stdout)
    assert (d["ref"], d["sha"], d["state"]) == (v1["version"], v1["sha"], "succeeded"), d
    assert site.serving()["sha"] == v1["sha"]  # type: ignore[index]


def test_a_role_that_may_not_deploy_may_not_migrate(site: SchemaSite) -> None:
    site.deploy("v1.0.0")
    before = site.server.deployments()
    refused = site.as_user("carl", "POST", "/environments/staging/migrate", json={})
    assert refused.status_code == 403, refused.text
    assert "may not deploy to staging" in refused.json()["message"]
    cli = site.cli("carl", "migrate", "staging")
    assert cli.returncode == 1 and "may not deploy to staging" in cli.stderr
    assert site.server.deployments() == before  # nothing recorded
    forbidden = site.audit("forbidden")
    assert forbidden and forbidden[0]["details"]["attempted"] == "migrate"


def test_migrate_without_a_migrate_command_is_refused(tmp_path: Path, app_database: str) -> None:
    s = start_schema_site(tmp_path, f"sqlite:///{tmp_path / 'conveyor.db'}", app_database, migrate="")
    try:
        r = s.as_user("eddie", "POST", "/environments/staging/migrate", json={})
        assert r.status_code == 400 and "no migrate command" in r.json()["message"], r.text
        # and deploy --maintenance there: no migration to cover
        m = s.cli("eddie", "deploy", "staging", "--ref", "main", "--maintenance")
        assert m.returncode == 1 and "has no migrate command" in m.stderr, m.stderr
        assert s.server.deployments() == []
    finally:
        stop_schema_site(s)


def test_deploy_maintenance_is_refused_on_a_command_target(tmp_path: Path) -> None:
    from tests.e2e.harness import Server, make_service_repo

    repo = make_service_repo(tmp_path / "shop", tmp_path / "effects")
    server = Server(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'c.db'}", poll_interval=0)
    server.start()
    try:
        server.ok("POST", "/services", json={"source": str(repo)})
        before = server.deployments("production")
        body = {"environment": "production", "ref": "main", "maintenance": True}
        r = server.api("POST", "/deployments", json=body)
        assert r.status_code == 400, r.text
        assert "'command' target, which has no maintenance mode" in r.json()["message"], r.text
        assert server.deployments("production") == before
    finally:
        server.stop()


def test_deploy_maintenance_is_recorded_and_audited(site: SchemaSite) -> None:
    site.deploy("v1.0.0")
    d = site.cli("eddie", "deploy", "staging", "--ref", "main", "--maintenance", "--wait", "--json")
    assert d.returncode == 0, d.stderr
    detail = json.loads(d.stdout)
    assert detail["state"] == "succeeded", detail
    migrate = next(s for s in detail["steps"] if s["name"] == "migrate")
    assert "maintenance mode on in staging" in (migrate["message"] or ""), migrate  # on for the migration
    requested = site.audit("deployment.requested")
    assert requested[0]["details"]["maintenance"] is True


def test_the_deploy_form_offers_maintenance_and_carries_it_to_the_request(site: SchemaSite) -> None:
    site.deploy("v1.0.0")
    with site.dashboard("eddie") as eddie:
        form = eddie.get("/deploy", params={"environment": "staging"})
        assert form.status_code == 200 and 'name="maintenance"' in form.text, form.text
        fields = {"service": "web", "environment": "staging", "ref": "main", "maintenance": "on"}
        confirm = eddie.post("/deploy/confirm", data={**fields, "csrf_token": csrf(form.text)})
        assert confirm.status_code == 200, confirm.text
        assert "maintenance mode on during the migrate step" in confirm.text
        assert '<input type="hidden" name="maintenance" value="on">' in confirm.text
        sent = eddie.post("/deploy", data={**fields, "csrf_token": csrf(confirm.text)}, follow_redirects=False)
        assert sent.status_code == 303, sent.text
    requested = site.audit("deployment.requested")[0]
    assert requested["actor"] == "eddie" and requested["details"]["maintenance"] is True
    site.server.wait_finished(requested["subject"], timeout=120)


def test_migrate_passes_the_same_gates_as_a_deploy(site: SchemaSite) -> None:
    from tests.conftest import wait_until

    site.deploy("v1.0.0")
    commit(site.repo, {"db/migrations/0002_drop_name.sql": "ALTER TABLE users DROP COLUMN name;\n"}, "v2: drop")
    d = site.as_user("eddie", "POST", "/environments/staging/migrate", json={"ref": "main"})
    assert d.status_code == 201, d.text
    ids = d.json()["id"]

    def held() -> dict[str, object] | None:
        now = site.server.deployment(ids)
        failing = [g for g in now["gates"] if g["gate"] == "migrations" and not g["passed"]]
        return now if failing else None

    pending = wait_until(held, timeout=60, what="the migrations gate to hold the migration")
    assert pending["state"] == "pending" and site.columns() == ["id", "name"]
    site.as_user(
        "rita", "POST", f"/deployments/{ids}/migrations/acknowledge", json={"reason": "expand done in v1"}
    ).raise_for_status()
    done = site.server.wait_finished(ids, timeout=120)
    assert (done["kind"], done["state"]) == ("migrate", "succeeded"), done
    assert site.columns() == ["id"]
    assert site.serving()["version"] == "v1.0.0"  # type: ignore[index]
