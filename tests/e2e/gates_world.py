"""A service whose production has every gate of part 1, users for every role, and helpers."""

from __future__ import annotations

import hashlib
import hmac
import json
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.harness import SCRIPTS, Server, commit, git

from conveyor.auth.users import add_user, create_token
from conveyor.domain.clock import Clock
from conveyor.store.db import Database

SECRET = "gate-secret"
ROLES = {
    "eve": "engineer",
    "rita": "release_manager",
    "ron": "release_manager",
    "rosa": "release_manager",
    "max": "manager",
    "ada": "admin",
    "ci": "reporter",
}
REPOSITORY = {"full_name": "acme/shop", "id": 4242}


def gated_config(effects: Path) -> str:
    target = "{kind: command, deploy: ./scripts/deploy.sh, rollback: ./scripts/rollback.sh}"
    return textwrap.dedent(
        f"""\
        service: shop
        env: {{EFFECTS: '{effects}'}}
        environments:
          development:
            branch: develop
            target: {target}
          staging:
            branch: main
            target: {target}
            smoke: ./scripts/step.sh smoke
          production:
            target: {target}
            deployers: [release_manager]
            tag: {{bump: minor}}
            gates:
              reviews: 2
              checks: [tests, lint, security]
              staging_verified: true
              approval: {{count: 2, from: [release_manager], self_approval: false}}
              checklist: [rollback_plan, stakeholders_notified]
        """
    )


@dataclass
class GateWorld:
    repo: Path
    effects: Path
    server: Server
    tokens: dict[str, str] = field(default_factory=dict)
    _http: httpx.Client | None = None

    @property
    def http(self) -> httpx.Client:
        """One keep-alive client to the server, for tests that send many requests."""
        if self._http is None:
            self._http = httpx.Client(base_url=self.server.url, timeout=30)
        return self._http

    def as_(self, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.request(method, self.server.url + "/api/v1" + path, headers=headers, timeout=30, **kwargs)

    def ok_as(self, user: str, method: str, path: str, **kwargs: Any) -> Any:
        r = self.as_(user, method, path, **kwargs)
        assert r.status_code < 300, f"{user} {method} {path}: {r.status_code} {r.text}"
        return r.json()

    def env_for(self, user: str) -> dict[str, str]:
        return {**self.server.env(), "CONVEYOR_TOKEN": self.tokens[user]}

    def github(self, event: str, payload: dict[str, Any]) -> httpx.Response:
        body = json.dumps(payload).encode()
        sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        return httpx.post(
            self.server.url + "/api/v1/hooks/github",
            content=body,
            timeout=30,
            headers={
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": sig,
                "Content-Type": "application/json",
            },
        )

    def review(self, sha: str, reviewer: str, author: str = "dev", state: str = "approved", pr: int = 7) -> None:
        payload = {
            "action": "submitted",
            "review": {"state": state, "commit_id": sha, "user": {"login": reviewer}},
            "pull_request": {"number": pr, "user": {"login": author}, "head": {"sha": sha}},
            "repository": REPOSITORY,
        }
        r = self.github("pull_request_review", payload)
        assert r.status_code == 202, r.text

    def gate(self, deployment: dict[str, Any], name: str) -> dict[str, Any]:
        return next(g for g in deployment["gates"] if g["gate"] == name)


def make_gate_world(
    tmp_path: Path,
    database_url: str,
    config: Callable[[Path], str] = gated_config,
    *,
    process: bool = False,
    clock: Clock | None = None,
) -> Iterator[GateWorld]:
    effects = tmp_path / "effects"
    effects.mkdir()
    repo = tmp_path / "shop"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {**SCRIPTS, "conveyor.yml": config(effects)}, "initial")
    server = Server(
        home=tmp_path / "home",
        database_url=database_url,
        poll_interval=0,
        webhook_secret=SECRET,
        process=process,
        clock=clock,
    )
    db = Database(database_url)
    db.migrate()
    now = datetime.now(UTC)
    tokens = {}
    with db.begin() as conn:
        for name, role in ROLES.items():
            tokens[name] = create_token(conn, add_user(conn, name, [role], now), now)
    db.dispose()
    server.token = tokens["ada"]
    server.start()
    world = GateWorld(repo, effects, server, tokens)
    world.ok_as("ada", "POST", "/services", json={"source": str(repo), "github_repository": "acme/shop"})
    try:
        yield world
    finally:
        if world._http is not None:
            world._http.close()
        server.stop()
