"""A service whose environments notify local receivers, a server that knows them, and users with
chat handles: the world of the notification tests."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.conftest import wait_until
from tests.e2e.harness import SCRIPTS, Server, commit, git
from tests.notify.receivers import SLACK_TOKEN, GithubReceiver, Mailbox, SlackReceiver, WebhookReceiver

from conveyor.auth.users import add_user, create_token
from conveyor.notify.plan import CONSUMER
from conveyor.store import events
from conveyor.store.db import Database
from conveyor.store.tables import notifications

HOOK_SECRET = "hook-secret-for-tests"
PEOPLE = {
    "ron": {"slack": "U0RON", "email": "ron@example.com"},
    "rosa": {"slack": "U0ROSA", "email": "rosa@example.com"},
    "alice": {"slack": "U0ALICE"},
}
COMMAND = "{kind: command, deploy: ./scripts/deploy.sh, rollback: ./scripts/rollback.sh}"


APPROVAL = "approval: {count: 1, from: [release_manager], self_approval: false}\n"
TICKET_URL = "https://tickets.example.com/browse/{ticket}"


def config(
    effects: Path,
    webhook_url: str,
    production_notify: str,
    staging_notify: str,
    production_gates: str = APPROVAL,
    tail: str = "",
) -> str:
    """conveyor.yml: staging and production (its ``gates:`` and ``notify:`` given), then ``tail``
    (top-level keys: hotfix, templates)."""
    head = textwrap.dedent(
        f"""\
        service: shop
        build: ./scripts/step.sh prepare
        env: {{EFFECTS: '{effects}'}}
        environments:
          staging:
            branch: main
            target: {COMMAND}
            smoke: ./scripts/step.sh smoke
            notify:
        """
    )
    production = textwrap.dedent(
        f"""\
        production:
          target: {COMMAND}
          tag: {{bump: minor}}
          url: https://shop.example.com
          links: {{Grafana: "https://grafana.example.com/d/shop"}}
          gates:
        """
    )
    text = head + textwrap.indent(staging_notify, "      ") + textwrap.indent(production, "  ")
    text += textwrap.indent(production_gates, "      ") + "    notify:\n"
    text += textwrap.indent(production_notify, "      ") + tail
    return text.replace("WEBHOOK_URL", webhook_url)


PRODUCTION_NOTIFY = """\
- slack: {token: "${T_SLACK_TOKEN}", channel: "#deployments"}
- github: {token: "${T_GITHUB_TOKEN}"}
- email: {to: [releases@example.com]}
- webhook: {url: "WEBHOOK_URL", secret: "${T_HOOK_SECRET}", events: [requested, succeeded, failed]}
"""
STAGING_NOTIFY = """\
- slack: "${T_SLACK_WEBHOOK}"
"""


@dataclass
class NotifyServer(Server):
    extra: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra}


@dataclass
class World:
    repo: Path
    effects: Path
    server: NotifyServer
    slack: SlackReceiver
    github: GithubReceiver
    hooks: WebhookReceiver
    mailbox: Mailbox
    tokens: dict[str, str]
    db: Database

    def as_(self, user: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        r = httpx.request(method, self.server.url + "/api/v1" + path, headers=headers, timeout=30, **kwargs)
        assert r.status_code < 300, f"{user} {method} {path}: {r.status_code} {r.text}"
        return r.json()

    def deploy(self, environment: str, ref: str = "main", **extra: Any) -> dict[str, Any]:
        return dict(self.server.ok("POST", "/deployments", json={"environment": environment, "ref": ref, **extra}))

    def approve(self, deployment: dict[str, Any], *users: str) -> None:
        """Once its gates were evaluated (it waits for approval), each of ``users`` approves it."""
        wait_until(lambda: self.server.deployment(deployment["id"])["gates"], what="gates evaluated")
        for user in users:
            self.as_(user, "POST", f"/deployments/{deployment['id']}/approvals", json={})

    def deliveries(self, deployment_id: str | None = None) -> list[Any]:
        query = select(notifications).order_by(notifications.c.id)
        if deployment_id:
            query = query.where(notifications.c.deployment_id == deployment_id)
        with self.db.read() as conn:
            return list(conn.execute(query))

    def all_delivered(self, timeout: float = 30) -> list[Any]:
        def done() -> list[Any] | None:
            with self.db.read() as conn:  # every event so far planned, and every message sent
                if events.cursor(conn, CONSUMER) < events.head(conn):
                    return None
            rows = self.deliveries()
            return rows if rows and all(r.state != "pending" for r in rows) else None

        rows = wait_until(done, timeout=timeout, what="every notification delivered")
        assert [(r.id, r.last_error) for r in rows if r.state != "delivered"] == []
        return rows


def make_world(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    production_notify: str = PRODUCTION_NOTIFY,
    staging_notify: str = STAGING_NOTIFY,
    settings: dict[str, str] | None = None,
    production_gates: str = APPROVAL,
    tail: str = "",
    database_url: str | None = None,
    users: dict[str, list[str]] | None = None,
) -> Iterator[World]:
    """The world on SQLite in ``tmp_path`` unless ``database_url`` names another (empty) database;
    ``users`` (with tokens) join alice, ron, rosa and eve."""
    slack, github = SlackReceiver().start(), GithubReceiver().start()
    hooks, mailbox = WebhookReceiver(HOOK_SECRET).start(), Mailbox().start()
    monkeypatch.setenv("T_SLACK_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("T_SLACK_WEBHOOK", slack.webhook_url())
    monkeypatch.setenv("T_GITHUB_TOKEN", GithubReceiver.TOKEN)
    monkeypatch.setenv("T_HOOK_SECRET", HOOK_SECRET)
    effects, repo = tmp_path / "effects", tmp_path / "shop"
    effects.mkdir()
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    text = config(effects, hooks.url + "/conveyor", production_notify, staging_notify, production_gates, tail)
    commit(repo, {**SCRIPTS, "conveyor.yml": text}, "Initial service")
    database_url = database_url or f"sqlite:///{tmp_path / 'conveyor.db'}"
    db = Database(database_url)
    db.migrate()
    now = datetime.now(UTC)
    tokens = {}
    with db.begin() as conn:
        for name, roles in {"alice": ["admin", "release_manager"], "ron": ["release_manager"]}.items():
            tokens[name] = create_token(conn, add_user(conn, name, roles, now), now)
        add_user(conn, "rosa", ["release_manager"], now)
        add_user(conn, "eve", ["engineer"], now)
        for name, roles in (users or {}).items():
            tokens[name] = create_token(conn, add_user(conn, name, roles, now), now)
    server = NotifyServer(home=tmp_path / "home", database_url=database_url, poll_interval=0)
    server.token = tokens["alice"]
    server.extra = {
        "CONVEYOR_NOTIFY_PEOPLE": json.dumps(PEOPLE),
        "CONVEYOR_NOTIFY_INTERVAL": "0.05",
        "CONVEYOR_NOTIFY_RETRY_BASE": "0.2",
        "CONVEYOR_NOTIFY_RETRY_MAX": "1",
        "CONVEYOR_SLACK_API_URL": slack.url + "/api/",
        "CONVEYOR_GITHUB_API_URL": github.url,
        "CONVEYOR_SMTP_URL": f"smtp://127.0.0.1:{mailbox.port}",
        "CONVEYOR_TICKET_URL": TICKET_URL,
        **(settings or {}),
    }
    server.start()
    world = World(repo, effects, server, slack, github, hooks, mailbox, tokens, db)
    world.as_("alice", "POST", "/services", json={"source": str(repo), "github_repository": "acme/shop"})
    try:
        yield world
    finally:
        server.stop()
        for receiver in (slack, github, hooks, mailbox):
            receiver.stop()
        db.dispose()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from make_world(tmp_path, monkeypatch)
