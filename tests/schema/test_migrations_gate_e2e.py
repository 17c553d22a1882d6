"""The migrations gate end to end (docs/database.md, docs/gates.md): a production release whose
commit adds a .sql file with a NOT NULL column without a default and a plain CREATE INDEX waits in
pending with both findings named (rule, statement, fix); an engineer's acknowledgement is refused
(403, audited) and changes nothing; a release manager's lets it deploy, ticks the checklist's
migrations_reviewed, and is audited. The dashboard shows the findings, and the Acknowledge form
only to release managers. A real server on a real port, a real git repository, squawk, the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import wait_until
from tests.e2e.harness import SCRIPTS, Server, commit, git

from conveyor.devserver import make_token

pytestmark = pytest.mark.sqlite_only  # see SQLITE_ONLY_DOC in tests/conftest.py

TARGET = "{kind: command, deploy: ./scripts/deploy.sh, rollback: ./scripts/rollback.sh}"
ADD = "ALTER TABLE users ADD COLUMN email text NOT NULL;"
INDEX = "CREATE INDEX users_email ON users (email);"
RULES = ["adding-required-field", "require-concurrent-index-creation"]
USERS = {"eve": ["engineer"], "rita": ["release_manager"]}


def config(effects: Path) -> str:
    return textwrap.dedent(
        f"""\
        service: shop
        env: {{EFFECTS: '{effects}'}}
        environments:
          development:
            branch: main
            target: {TARGET}
          production:
            target: {TARGET}
            migrate: ./scripts/step.sh migrate
            gates:
              checklist: [migrations_reviewed]
        """
    )


@dataclass
class World:
    repo: Path
    effects: Path
    server: Server
    tokens: dict[str, str]

    def as_(self, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.request(method, self.server.url + "/api/v1" + path, headers=headers, timeout=30, **kwargs)

    def ok_as(self, user: str, method: str, path: str, **kwargs: Any) -> Any:
        r = self.as_(user, method, path, **kwargs)
        assert r.status_code < 300, f"{user} {method} {path}: {r.status_code} {r.text}"
        return r.json()

    def cli(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**self.server.env(), "CONVEYOR_TOKEN": self.tokens[user], "CONVEYOR_URL": self.server.url}
        return subprocess.run(
            [sys.executable, "-m", "conveyor", *args], env=env, capture_output=True, text=True, timeout=120
        )

    def dashboard(self, user: str) -> httpx.Client:
        """An httpx client signed in to the dashboard as ``user``."""
        client = httpx.Client(base_url=self.server.url, timeout=30)
        form = client.get("/login")
        data = {"username": user, "password": f"{user}-password", "csrf_token": csrf(form.text), "next": "/"}
        assert client.post("/login", data=data).status_code == 303
        return client

    def audit(self, action: str) -> list[dict[str, Any]]:
        entries = self.ok_as("admin", "GET", "/audit", params={"limit": 500})["entries"]
        return [e for e in entries if e["action"] == action]


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).replace("&#39;", "'").replace("&#34;", '"')


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    """Production serves the first commit (its gates: migrations, and the checklist's
    migrations_reviewed ticked by hand: there was nothing to lint); main then adds db/0002_email.sql."""
    effects, repo = tmp_path / "effects", tmp_path / "shop"
    effects.mkdir()
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {**SCRIPTS, "conveyor.yml": config(effects)}, "initial")
    tokens = {"admin": make_token(database_url, "admin", ["admin"])}
    for name, roles in USERS.items():
        tokens[name] = make_token(database_url, name, roles, password=f"{name}-password")
    server = Server(home=tmp_path / "home", database_url=database_url, poll_interval=0, token=tokens["admin"])
    server.start()
    w = World(repo, effects, server, tokens)
    try:
        w.ok_as("admin", "POST", "/services", json={"source": str(repo)})
        first = w.ok_as("rita", "POST", "/deployments", json={"environment": "production", "ref": "main"})
        assert first["state"] == "pending"
        gates = wait_until(lambda: server.deployment(first["id"])["gates"], what="the first deployment's gates")
        assert (
            next(g for g in gates if g["gate"] == "migrations")["reason"] == "no finding in the migrations (no new SQL)"
        )
        w.ok_as("rita", "POST", f"/deployments/{first['id']}/checklist", json={"item": "migrations_reviewed"})
        assert server.wait_finished(first["id"])["state"] == "succeeded"
        commit(repo, {"db/0002_email.sql": f"-- users get an e-mail\n{ADD}\n\n{INDEX}\n"}, "Users' e-mail")
        yield w
    finally:
        server.stop()


def gate(d: dict[str, Any]) -> dict[str, Any] | None:
    return next((g for g in d["gates"] if g["gate"] == "migrations"), None)


def request_pending(w: World) -> dict[str, Any]:
    """A production deployment of main, once its gates were judged: blocked by the findings."""
    d = w.ok_as("rita", "POST", "/deployments", json={"environment": "production", "ref": "main"})
    assert d["state"] == "pending"

    def judged() -> dict[str, Any] | None:
        found = w.server.deployment(d["id"])
        return found if gate(found) else None

    return wait_until(judged, what="the migrations gate")


def why_migrations(w: World) -> dict[str, Any]:
    answer = w.ok_as("rita", "GET", "/why", params={"environment": "production", "ref": "main"})
    return next(g for g in answer["gates"] if g["gate"] == "migrations")


def test_findings_block_until_a_release_manager_acknowledges(world: World) -> None:
    before = why_migrations(world)  # nothing linted for this commit yet
    assert before["passed"] and before["reason"] == "the migrations are linted when the deployment is requested"
    d = request_pending(world)
    after = why_migrations(world)  # the request's report, now the commit's newest
    assert not after["passed"] and ADD in after["reason"] and "DEPLOYMENT_ID" in after["reason"]
    g = gate(d)
    assert g is not None and not g["passed"] and d["state"] == "pending"
    reason = g["reason"]
    assert "2 finding(s) in the migrations (.sql files: db/0002_email.sql)" in reason
    assert f"adding-required-field: `{ADD}` (line 3); fix: add the column as nullable, or with a default" in reason
    assert f"require-concurrent-index-creation: `{INDEX}` (line 5); fix: use CREATE INDEX CONCURRENTLY" in reason
    assert f"conveyor migrations acknowledge {d['id'][:8]}" in reason
    assert [f["rule"] for f in g["details"]["findings"]] == [
        "adding-required-field",
        "require-concurrent-index-creation",
    ]

    shown = world.cli("eve", "migrations", "show", d["id"][:8], "--json")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["report"]["source"] == ".sql files" and view["report"]["files"] == ["db/0002_email.sql"]
    assert view["unacknowledged"] == ["adding-required-field", "require-concurrent-index-creation"]
    table = world.cli("eve", "migrations", "show", d["id"][:8])
    assert (
        table.returncode == 0 and "require-concurrent-index-creation" in table.stdout and "CONCURRENTLY" in table.stdout
    )

    # an engineer may not: 403 with the reason, audited, nothing recorded, still pending
    refused = world.as_("eve", "POST", f"/deployments/{d['id']}/migrations/acknowledge", json={"reason": "fine"})
    assert refused.status_code == 403 and "only release_manager may" in refused.json()["message"]
    assert any(e["details"]["attempted"] == "migrations.acknowledge" for e in world.audit("forbidden"))
    assert world.ok_as("eve", "GET", f"/deployments/{d['id']}/migrations")["acknowledgements"] == []
    assert world.server.deployment(d["id"])["state"] == "pending" and not world.audit("migrations.acknowledged")
    # bad input and unknown deployments are refused and change nothing
    empty = world.as_("rita", "POST", f"/deployments/{d['id']}/migrations/acknowledge", json={"reason": "  "})
    assert empty.status_code == 400 and "needs a reason" in empty.json()["message"]
    unknown = world.as_("rita", "POST", "/deployments/ffffffff/migrations/acknowledge", json={"reason": "ok"})
    assert unknown.status_code == 404 and "ffffffff" in unknown.json()["message"]
    dev = world.ok_as("rita", "POST", "/deployments", json={"environment": "development", "ref": "main"})
    none = world.as_("rita", "POST", f"/deployments/{dev['id']}/migrations/acknowledge", json={"reason": "ok"})
    assert none.status_code == 409 and "no lint report" in none.json()["message"]
    assert world.server.wait_finished(dev["id"])["state"] == "succeeded"  # development lints nothing: not gated

    # a release manager's acknowledgement lets it go, and ticks migrations_reviewed
    ack = world.cli("rita", "migrations", "acknowledge", d["id"][:8], "--reason", "users has 40 rows", "--json")
    assert ack.returncode == 0, ack.stderr
    assert json.loads(ack.stdout)["unacknowledged"] == []
    done = world.server.wait_finished(d["id"])
    assert done["state"] == "succeeded", done
    passed = gate(done)
    assert passed is not None and passed["passed"]
    assert passed["reason"] == "2 finding(s) in the migrations acknowledged by rita"
    checklist = next(g for g in done["gates"] if g["gate"] == "checklist")
    assert checklist["passed"] and checklist["details"]["ticked"]["migrations_reviewed"]["by"] == "rita"
    entry = world.audit("migrations.acknowledged")[-1]
    assert entry["actor"] == "rita" and entry["subject"] == d["id"]
    assert entry["details"]["rules"] == ["adding-required-field", "require-concurrent-index-creation"]
    assert entry["details"]["reason"] == "users has 40 rows"
    again = world.as_("rita", "GET", f"/deployments/{d['id']}/migrations").json()
    assert again["run"] is None or again["run"]["environment"] == "production"


def test_the_dashboard_shows_the_findings_and_the_form_only_to_release_managers(world: World) -> None:
    d = request_pending(world)
    eve = world.dashboard("eve")
    page = eve.get(f"/deployments/{d['id']}")
    assert page.status_code == 200
    card = re.search(r'<section class="card attention" data-testid="migrations">.*?</section>', page.text, re.S)
    assert card, page.text
    shown = text_of(card.group(0))
    assert "from .sql files: db/0002_email.sql" in shown
    assert ADD in shown and INDEX in shown and "use CREATE INDEX CONCURRENTLY" in shown
    assert "adding-required-field" in shown and "add the column as nullable" in shown
    assert 'data-testid="migrations-acknowledge"' not in page.text
    token = csrf(eve.get("/tokens").text)
    refused = eve.post(f"/deployments/{d['id']}/migrations/acknowledge", data={"reason": "x", "csrf_token": token})
    assert refused.status_code == 403 and "may not acknowledge" in refused.text
    assert world.ok_as("eve", "GET", f"/deployments/{d['id']}/migrations")["acknowledgements"] == []

    rita = world.dashboard("rita")
    page = rita.get(f"/deployments/{d['id']}")
    assert 'data-testid="migrations-acknowledge"' in page.text
    no_csrf = rita.post(f"/deployments/{d['id']}/migrations/acknowledge", data={"reason": "small table"})
    assert (
        no_csrf.status_code == 403
        and world.ok_as("rita", "GET", f"/deployments/{d['id']}/migrations")["acknowledgements"] == []
    )
    posted = rita.post(
        f"/deployments/{d['id']}/migrations/acknowledge", data={"reason": "small table", "csrf_token": csrf(page.text)}
    )
    assert posted.status_code == 303, posted.text
    assert world.server.wait_finished(d["id"])["state"] == "succeeded"
    after = text_of(rita.get(f"/deployments/{d['id']}").text)
    assert "by rita (adding-required-field, require-concurrent-index-creation): “small table”" in after
    eve.close()
    rita.close()


def test_an_acknowledgement_holds_for_the_commit_and_ticks_a_later_deployments_checklist(world: World) -> None:
    first = request_pending(world)
    world.ok_as("rita", "POST", f"/deployments/{first['id']}/cancel")
    ack = world.as_("rita", "POST", f"/deployments/{first['id']}/migrations/acknowledge", json={"reason": "reviewed"})
    assert ack.status_code == 201 and ack.json()["unacknowledged"] == []
    later = world.ok_as("rita", "POST", "/deployments", json={"environment": "production", "ref": "main"})
    done = world.server.wait_finished(later["id"])
    assert done["state"] == "succeeded", done
    lint = gate(done)
    assert lint is not None and lint["reason"] == "2 finding(s) in the migrations acknowledged by rita"
    checklist = next(g for g in done["gates"] if g["gate"] == "checklist")
    assert checklist["details"]["ticked"]["migrations_reviewed"]["by"] == "rita"
    ticked = [e for e in world.audit("checklist.ticked") if e["subject"] == later["id"]]
    assert [e["details"] for e in ticked] == [{"item": "migrations_reviewed", "from": "migrations.acknowledged"}]
