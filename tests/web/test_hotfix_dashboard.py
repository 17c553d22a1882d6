"""Hotfixes on the dashboard (docs/hotfix.md, docs/dashboard.md), in-process through Starlette's
TestClient against a real git repository and real deploys of a command target: "Start a hotfix"
under production on the service's page (what `conveyor hotfix start` does), the merge-backs due on
the overview, and the commits a deploy would drop on the deploy form, with a release manager's
override on the confirm step. Every action is refused (403, audited as `forbidden`) for a lower
role and without the CSRF token.

One world per module (and per xdist worker): production serves v0.1.0, then hotfix v0.1.1, whose
merge-back into main conflicts (main changed the same line), so main lacks the fix."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import wait_until
from tests.e2e.harness import SCRIPTS, commit, git
from tests.inproc import App, app

from conveyor.auth.sessions import COOKIE
from conveyor.store.tables import audit_log

TARGET = "{kind: command, deploy: ./scripts/deploy.sh, rollback: ./scripts/rollback.sh}"
USERS = {"eve": ["engineer"], "rita": ["release_manager"], "max": ["manager"], "pat": ["reporter"]}


def config(effects: Path) -> str:
    return textwrap.dedent(
        f"""\
        service: shop
        env: {{EFFECTS: '{effects}'}}
        environments:
          staging: {{branch: main, target: {TARGET}}}
          production:
            target: {TARGET}
            deployers: [release_manager, manager]
            tag: {{bump: minor}}
        hotfix: {{merge_back: [main]}}
        """
    )


@dataclass
class World:
    app: App
    repo: Path
    fix: str  # the hotfix commit (v0.1.1, serving in production)
    main: str  # main's tip: lacks the fix (its merge-back conflicts)
    other: str  # another branch lacking the fix, for the override

    sessions: dict[str, str] = field(default_factory=dict)

    def as_user(self, user: str) -> None:
        """The client signed in as ``user`` (a session per user, kept: a sign-in costs an argon2 hash)."""
        self.app.client.cookies.clear()
        if user in self.sessions:
            self.app.client.cookies.set(COOKIE, self.sessions[user])
            return
        self.app.sign_in(user)
        self.sessions[user] = self.app.client.cookies[COOKIE]

    def page(self, user: str, path: str, **params: Any) -> Any:
        self.as_user(user)
        return self.app.client.get(path, params=params)

    def csrf(self, html: str) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert found, html
        return found.group(1)

    def post(self, user: str, path: str, data: dict[str, str], csrf: bool = True) -> Any:
        """Sign in as ``user``, take the CSRF token from a page, post the form."""
        token = self.csrf(self.page(user, "/tokens").text)
        return self.app.client.post(path, data={**data, **({"csrf_token": token} if csrf else {})})

    def refusals(self, actor: str, attempted: str) -> list[dict[str, Any]]:
        with self.app.rt.db.read() as conn:
            rows = conn.execute(audit_log.select().where(audit_log.c.action == "forbidden")).all()
        return [dict(r.details) for r in rows if r.actor == actor and dict(r.details)["attempted"] == attempted]

    def audited(self, action: str) -> list[Any]:
        with self.app.rt.db.read() as conn:
            return list(conn.execute(audit_log.select().where(audit_log.c.action == action)).all())


def deploy(a: App, ref: str) -> dict[str, Any]:
    d = a.ok("rita", "POST", "/deployments", json={"environment": "production", "ref": ref})
    done = a.wait_finished(d["id"])
    assert done["state"] == "succeeded", done
    return done


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("hotfix-dashboard")
    effects, repo = tmp / "effects", tmp / "shop"
    effects.mkdir()
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {**SCRIPTS, "conveyor.yml": config(effects), "checkout.txt": "checkout v1\n"}, "initial")
    with app(tmp / "home", f"sqlite:///{tmp / 'c.db'}", USERS) as a:
        a.ok("admin", "POST", "/services", json={"source": str(repo)})
        assert deploy(a, "main")["version"] == "v0.1.0"
        git(repo, "branch", "hotfix/crash", "main")
        tree = tmp / "wt"
        git(repo, "worktree", "add", "-q", str(tree), "hotfix/crash")
        fix = commit(tree, {"checkout.txt": "checkout v1, fixed\n"}, "Fix checkout crash")
        git(repo, "worktree", "remove", "--force", str(tree))
        main = commit(repo, {"checkout.txt": "checkout v2\n"}, "Checkout v2")  # the same line: a conflict
        assert deploy(a, "hotfix/crash")["version"] == "v0.1.1"
        wait_until(lambda: a.ok("rita", "GET", "/merge-backs"), timeout=30, what="the merge-back to be due")
        git(repo, "switch", "-q", "-c", "other")
        other = commit(repo, {"other.txt": "other\n"}, "Other work")
        git(repo, "switch", "-q", "main")
        yield World(a, repo, fix, main, other)


# --- Start a hotfix ------------------------------------------------------------------------------


def test_start_a_hotfix_under_production_creates_the_branch_and_shows_the_next_steps(world: World) -> None:
    service = world.page("eve", "/services/shop")
    assert service.status_code == 200
    row = re.search(r'<tr data-environment="production">.*?</tr>', service.text, re.S)
    assert row and 'href="/hotfixes/new?service=shop&amp;environment=production"' in row.group(0)
    form = world.app.client.get("/hotfixes/new", params={"service": "shop", "environment": "production"})
    assert form.status_code == 200 and "v0.1.1" in form.text and 'data-testid="hotfix-form"' in form.text
    data = {"service": "shop", "environment": "production", "name": "login-loop", "csrf_token": world.csrf(form.text)}
    started = world.app.client.post("/hotfixes", data=data)
    assert started.status_code == 200, started.text
    assert "hotfix/login-loop" in started.text and "created" in started.text and "v0.1.1" in started.text
    assert "conveyor deploy production --ref hotfix/login-loop" in started.text  # the next steps
    assert git(world.repo, "rev-parse", "hotfix/login-loop") == world.fix  # cut from what production serves
    entry = world.audited("hotfix.started")[-1]
    assert entry.actor == "eve" and entry.details["branch"] == "hotfix/login-loop"


def test_a_reporter_sees_no_start_a_hotfix_and_a_forged_post_is_refused_and_audited(world: World) -> None:
    service = world.page("pat", "/services/shop")
    assert service.status_code == 200 and "Start a hotfix" not in service.text
    assert world.app.client.get("/hotfixes/new?service=shop&environment=production").status_code == 403
    data = {"service": "shop", "environment": "production", "name": "sneaky"}
    refused = world.post("pat", "/hotfixes", data)
    assert refused.status_code == 403 and "pat may not start a hotfix" in refused.text
    assert world.refusals("pat", "hotfix.start")
    no_csrf = world.post("eve", "/hotfixes", data, csrf=False)
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text
    assert "sneaky" not in git(world.repo, "branch", "--list", "hotfix/*")


# --- Merge-backs due on the overview -------------------------------------------------------------


def test_the_overview_lists_each_merge_back_due(world: World) -> None:
    overview = world.page("pat", "/")
    assert overview.status_code == 200
    section = re.search(r'<section class="card attention" data-testid="merge-backs">.*?</section>', overview.text, re.S)
    assert section, overview.text
    item = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", section.group(0)))
    assert "shop: hotfix v0.1.1 into main: main conflicts in checkout.txt" in item, item


# --- Missing commits on the deploy form ----------------------------------------------------------


def test_the_deploy_form_names_the_commits_production_would_drop_and_says_it_refuses(world: World) -> None:
    gates = world.page("max", "/deploy/gates", service="shop", environment="production", ref="main")
    assert gates.status_code == 200
    block = re.search(r'data-testid="missing-commits">.*?</div>', gates.text, re.S)
    assert block, gates.text
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", block.group(0)))
    assert world.fix[:12] in block.group(0) and "Fix checkout crash" in text
    assert "hotfix v0.1.1 not merged back into main" in text
    assert "Production refuses this deploy unless a release manager overrides with a reason" in text
    assert "ask a release manager to override" in text  # max is a manager: no override for him
    token = world.csrf(world.app.client.get("/deploy", params={"environment": "production"}).text)
    form = {"service": "shop", "environment": "production", "ref": "main", "csrf_token": token}
    confirm = world.app.client.post("/deploy/confirm", data=form)
    assert confirm.status_code == 200 and world.fix[:12] in confirm.text
    assert 'data-testid="override-form"' not in confirm.text
    refused = world.app.client.post("/deploy", data=form)  # confirming anyway: refused, with the commits named
    assert refused.status_code == 409 and "hotfix v0.1.1 not merged back into main" in refused.text


def test_staging_only_warns_about_the_commits_it_would_drop(world: World) -> None:
    world.app.ok("rita", "POST", "/deployments", json={"environment": "staging", "ref": "hotfix/crash"})
    wait_until(
        lambda: any(d["state"] == "succeeded" for d in world.app.ok("rita", "GET", "/deployments?environment=staging")),
        timeout=30,
        what="staging to serve the hotfix",
    )
    gates = world.page("eve", "/deploy/gates", service="shop", environment="staging", ref="main")
    assert 'data-testid="missing-commits"' in gates.text and "A warning only" in gates.text, gates.text


def test_a_release_manager_overrides_on_the_confirm_step_and_a_manager_may_not(world: World) -> None:
    form = {"service": "shop", "environment": "production", "ref": "other", "notes": "drop it"}
    forged = world.post("max", "/deploy/allow-missing", {**form, "override_reason": "I say so"})
    assert forged.status_code == 403 and "only a release manager may" in forged.text
    assert world.refusals("max", "allow-missing")
    assert world.post("rita", "/deploy/allow-missing", form, csrf=False).status_code == 403
    assert not world.audited("deployment.missing_commits_overridden")

    confirm = world.post("rita", "/deploy/confirm", form)
    assert confirm.status_code == 200 and 'data-testid="override-form"' in confirm.text
    override = {**form, "override_reason": "v2 rewrites checkout; the fix is obsolete"}
    done = world.app.client.post("/deploy/allow-missing", data={**override, "csrf_token": world.csrf(confirm.text)})
    assert done.status_code == 200, done.text
    assert 'data-testid="overridden"' in done.text and "v2 rewrites checkout" in done.text
    assert "has allowed dropping them" in done.text and 'data-testid="override-form"' not in done.text
    assert 'name="notes" value="drop it"' in done.text  # the deploy form's values carried on
    entry = world.audited("deployment.missing_commits_overridden")[-1]
    assert entry.actor == "rita" and entry.details["missing"] == [world.fix], entry.details
    why = world.app.ok("rita", "GET", "/why", params={"environment": "production", "ref": "other"})
    assert all(g["passed"] for g in why["gates"] if g["gate"] == "history"), why
