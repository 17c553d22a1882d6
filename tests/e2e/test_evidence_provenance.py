"""Gate evidence against a real server (issue 11, items 5 and 6): who may report checks and reviews,
whose author counts, which repository GitHub evidence must come from, per-service secrets, replayed
deliveries, evidence ordered by the event's own time, and malformed deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from tests.e2e.gates_world import ROLES, SECRET, gated_config
from tests.e2e.harness import SCRIPTS, Server, commit, git

from conveyor.auth.users import add_user, create_token
from conveyor.store.db import Database

SHOP = {"full_name": "acme/shop", "id": 4242}
SHOP_SECRET = "shop-only-secret"


@dataclass
class EnvServer(Server):
    extra: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra}


@dataclass
class World:
    repo: Path
    server: Server
    tokens: dict[str, str]
    sha: str = ""

    def as_(self, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.request(method, self.server.url + "/api/v1" + path, headers=headers, timeout=30, **kwargs)

    def deliver(
        self,
        event: str,
        payload: dict[str, Any] | bytes,
        *,
        path: str = "/hooks/github",
        secret: str = SECRET,
        delivery: str | None = None,
        form: bool = False,
    ) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        kind = "application/json"
        if form:
            body, kind = urlencode({"payload": body.decode()}).encode(), "application/x-www-form-urlencoded"
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "Content-Type": kind,
        }
        return httpx.post(self.server.url + "/api/v1" + path, content=body, headers=headers, timeout=30)

    def gates(self) -> dict[str, dict[str, Any]]:
        why = self.as_("rita", "GET", "/why", params={"environment": "production", "ref": self.sha})
        assert why.status_code == 200, why.text
        return {g["gate"]: g for g in why.json()["gates"]}


def review(
    sha: str, reviewer: str, *, state: str = "approved", at: str = "2026-11-02T10:00:00Z", repo: dict[str, Any] = SHOP
) -> dict[str, Any]:
    return {
        "action": "submitted",
        "review": {"state": state, "commit_id": sha, "user": {"login": reviewer}, "submitted_at": at},
        "pull_request": {"number": 7, "user": {"login": "dev"}, "head": {"sha": sha}},
        "repository": repo,
    }


def check_run(sha: str, name: str, conclusion: str, at: str, repo: dict[str, Any] = SHOP) -> dict[str, Any]:
    run = {"head_sha": sha, "name": name, "status": "completed", "conclusion": conclusion, "completed_at": at}
    return {"action": "completed", "check_run": run, "repository": repo}


def make_world(tmp_path: Path, register: dict[str, Any], extra: dict[str, str] | None = None) -> World:
    repo = tmp_path / "shop"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    sha = commit(repo, {**SCRIPTS, "conveyor.yml": gated_config(tmp_path / "effects")}, "initial")
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    server = EnvServer(home=tmp_path / "home", database_url=url, poll_interval=0, webhook_secret=SECRET)
    server.extra = extra or {}
    db = Database(url)
    db.migrate()
    now = datetime.now(UTC)
    with db.begin() as conn:
        tokens = {name: create_token(conn, add_user(conn, name, [role], now), now) for name, role in ROLES.items()}
    db.dispose()
    server.token = tokens["ada"]
    server.start()
    world = World(repo, server, tokens, sha)
    r = world.as_("ada", "POST", "/services", json={"source": str(repo), **register})
    assert r.status_code == 201, r.text
    return world


@pytest.fixture
def bound(tmp_path: Path) -> Iterator[World]:
    """shop, bound to GitHub's acme/shop at registration."""
    world = make_world(tmp_path, {"github_repository": "acme/shop"})
    try:
        yield world
    finally:
        world.server.stop()


def test_an_engineer_can_neither_report_checks_nor_review_their_own_commit(bound: World) -> None:
    sha = bound.sha  # authored by "Dev <dev@example.com>" (the harness's git identity)
    for name in ("tests", "lint", "security"):
        r = bound.as_("eve", "POST", "/checks", json={"sha": sha, "name": name, "state": "success"})
        assert r.status_code == 403 and "may not report checks" in r.json()["message"]
    r = bound.as_("eve", "POST", "/reviews", json={"sha": sha, "reviewer": "eve"})
    assert r.status_code == 403
    assert bound.gates()["checks"]["details"]["checks"] == {
        "tests": "missing",
        "lint": "missing",
        "security": "missing",
    }

    # CI's reporter account: the author is git's, whatever the caller claims
    own = bound.as_("ci", "POST", "/reviews", json={"sha": sha, "reviewer": "dev", "author": "somebody-else"})
    assert own.status_code == 201 and own.json()["author"] == "dev"
    other = bound.as_("ci", "POST", "/reviews", json={"sha": sha[:12], "reviewer": "bob"})
    assert other.status_code == 201 and other.json() == {
        "sha": sha,
        "reviewer": "bob",
        "author": "dev@example.com",
        "state": "approved",
    }
    reviews = bound.gates()["reviews"]
    assert reviews["details"]["approvers"] == ["bob"]
    assert "the author's own approval does not count (dev)" in reviews["reason"]
    assert bound.as_("ci", "POST", "/reviews", json={"sha": "f" * 40, "reviewer": "x"}).status_code == 400
    assert bound.as_("ci", "POST", "/reviews", json={"sha": "develop", "reviewer": "x"}).status_code == 400
    r = bound.as_("ci", "POST", "/checks", json={"sha": sha, "name": "tests", "state": "success"})
    assert r.status_code == 201
    assert bound.gates()["checks"]["details"]["checks"]["tests"] == "success"


def test_github_evidence_counts_only_from_the_services_repository(bound: World) -> None:
    sha = bound.sha
    fork = {"full_name": "mallory/shop", "id": 666}
    ignored = bound.deliver("pull_request_review", review(sha, "mallory", repo=fork))
    assert ignored.status_code == 202 and ignored.json()["ignored"] is True
    assert bound.deliver("check_run", check_run(sha, "tests", "success", "2026-11-02T10:00:00Z", fork)).json()[
        "ignored"
    ]
    # the first verified delivery from acme/shop records its id; another id under that name is refused
    assert bound.deliver("pull_request_review", review(sha, "bob")).status_code == 202
    recreated = bound.deliver("pull_request_review", review(sha, "carol", repo={"full_name": "ACME/shop", "id": 7}))
    assert recreated.status_code == 403 and "id 7" in recreated.json()["message"]
    gates = bound.gates()
    assert gates["reviews"]["details"]["approvers"] == ["bob"]
    assert gates["checks"]["details"]["checks"]["tests"] == "missing"
    audit = bound.as_("ada", "GET", "/audit", params={"limit": 100}).json()["entries"]
    bind = [e for e in audit if e["action"] == "service.github_bound"]
    assert [(e["subject"], e["details"]["repository_id"]) for e in bind] == [("shop", 4242)]


def test_a_replayed_or_late_delivery_does_not_override_newer_evidence(bound: World) -> None:
    sha = bound.sha
    approval = review(sha, "bob", state="approved", at="2026-11-02T10:00:00Z")
    first = bound.deliver("pull_request_review", approval, delivery="d-approval")
    assert first.status_code == 202 and "duplicate" not in first.json()
    later = review(sha, "bob", state="changes_requested", at="2026-11-02T11:00:00Z")
    assert bound.deliver("pull_request_review", later).status_code == 202
    # GitHub's "Redeliver" of the old approval: same delivery id, then (as if) a new one
    replay = bound.deliver("pull_request_review", approval, delivery="d-approval")
    assert replay.status_code == 202 and replay.json()["duplicate"] is True
    assert bound.deliver("pull_request_review", approval).status_code == 202
    reviews = bound.gates()["reviews"]
    assert reviews["details"]["changes_requested"] == ["bob"] and reviews["details"]["approvers"] == []

    # checks too: a green run completed earlier, arriving after a red one, stays older
    assert bound.deliver("check_run", check_run(sha, "lint", "failure", "2026-11-02T12:00:00Z")).status_code == 202
    assert bound.deliver("check_run", check_run(sha, "lint", "success", "2026-11-02T09:00:00Z")).status_code == 202
    assert bound.gates()["checks"]["details"]["checks"]["lint"] == "failure"
    audit = bound.as_("ada", "GET", "/audit", params={"limit": 100}).json()["entries"]
    assert sum(e["action"] == "review.recorded" for e in audit) == 3  # the replay recorded nothing


def test_malformed_signed_deliveries_are_400_and_form_encoding_works(bound: World) -> None:
    sha = bound.sha
    good = review(sha, "bob")
    cases: list[dict[str, Any] | bytes] = [
        {**good, "pull_request": []},
        {**good, "pull_request": {**good["pull_request"], "number": "abc"}},
        {**good, "repository": {"full_name": "acme/shop"}},
        b'{"review": "\xff\xfe"}',
        b"[" * 50_000 + b"]" * 50_000,
    ]
    for body in cases:
        r = bound.deliver("pull_request_review", body)
        assert r.status_code == 400, (body if isinstance(body, dict) else body[:20], r.status_code, r.text[:300])
        assert r.json()["error"] == "invalid"
    merged = {"action": "closed", "pull_request": [], "repository": SHOP}
    r = bound.deliver("pull_request", merged)
    assert r.status_code == 400 and "pull_request" in r.json()["message"], r.text
    body = json.dumps(good).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, "sha256").hexdigest()
    no_id = httpx.post(
        bound.server.url + "/api/v1/hooks/github",
        content=body,
        headers={"X-GitHub-Event": "pull_request_review", "X-Hub-Signature-256": signature},
    )
    assert no_id.status_code == 400 and "X-GitHub-Delivery" in no_id.json()["message"]
    form = bound.deliver("pull_request_review", good, form=True)  # GitHub's default content type
    assert form.status_code == 202 and form.json()["services"] == ["shop"], form.text
    assert bound.gates()["reviews"]["details"]["approvers"] == ["bob"]


def test_per_service_secrets_and_binding_at_the_first_delivery(tmp_path: Path) -> None:
    secrets = json.dumps({"shop": SHOP_SECRET})
    world = make_world(tmp_path, {}, {"CONVEYOR_GITHUB_WEBHOOK_SECRETS": secrets})
    try:
        sha = world.sha
        # shop names no repository yet: the shared hook counts nothing for it
        assert world.deliver("pull_request_review", review(sha, "bob")).json()["ignored"] is True
        own = "/hooks/github/shop"
        assert world.deliver("pull_request_review", review(sha, "bob"), path=own).status_code == 401  # server secret
        first = world.deliver("pull_request_review", review(sha, "bob"), path=own, secret=SHOP_SECRET)
        assert first.status_code == 202 and first.json()["services"] == ["shop"], first.text
        other = {"full_name": "mallory/shop", "id": 666}
        r = world.deliver("pull_request_review", review(sha, "mallory", repo=other), path=own, secret=SHOP_SECRET)
        assert r.status_code == 403 and "acme/shop" in r.json()["message"]
        # now bound, the shared hook (the server-wide secret) may not speak for it
        r = world.deliver("pull_request_review", review(sha, "carol"))
        assert r.status_code == 403 and "/api/v1/hooks/github/shop" in r.json()["fix"]
        assert world.gates()["reviews"]["details"]["approvers"] == ["bob"]
    finally:
        world.server.stop()


def test_the_server_wide_secret_cannot_bind_a_service_on_first_use(tmp_path: Path) -> None:
    world = make_world(tmp_path, {})  # no repository named, no secret of its own
    try:
        r = world.deliver("pull_request_review", review(world.sha, "mallory"), path="/hooks/github/shop")
        assert r.status_code == 202 and r.json()["ignored"] is True, r.text
        assert world.gates()["reviews"]["details"]["approvers"] == []
        audit = world.as_("ada", "GET", "/audit", params={"limit": 100}).json()["entries"]
        assert not any(e["action"] == "service.github_bound" for e in audit)
    finally:
        world.server.stop()
