"""A service with development, staging and a gated production (two release-manager approvals, a
checklist, staging verified), users of every role with passwords, and a real server."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.harness import SCRIPTS, Server, commit, git

from conveyor.auth.users import add_user, create_token
from conveyor.store.db import Database

ROLES = {
    "eve": "engineer",
    "rita": "release_manager",
    "ron": "release_manager",
    "rosa": "release_manager",
    "max": "manager",
    "ada": "admin",
}


def password(user: str) -> str:
    return f"{user}-secret-pw"


# a deploy script that talks while it works, so the live log has something to show
ROLLOUT = textwrap.dedent(
    """\
    #!/bin/sh
    echo "rolling out $CONVEYOR_VERSION ($CONVEYOR_SHA) to $CONVEYOR_ENV"
    echo "replica 1/2: starting $CONVEYOR_VERSION"
    "$CONVEYOR_WORKDIR/scripts/step.sh" rollout || exit $?
    echo "replica 1/2: healthy, in the rotation"
    echo "replica 2/2: healthy, in the rotation"
    echo "$CONVEYOR_VERSION $CONVEYOR_SHA" > "$EFFECTS/serving-$CONVEYOR_ENV"
    """
)


def browser_config(effects: Path) -> str:
    target = "{kind: command, deploy: ./scripts/rollout.sh, rollback: ./scripts/rollback.sh}"
    return textwrap.dedent(
        f"""\
        service: shop
        build: ./scripts/step.sh prepare
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
            migrate: ./scripts/step.sh migrate
            smoke: ./scripts/step.sh smoke
            tag: {{bump: minor}}
            gates:
              staging_verified: true
              approval: {{count: 2, from: [release_manager], self_approval: false}}
              checklist: [rollback_plan, stakeholders_notified]
        """
    )


@dataclass
class World:
    repo: Path
    effects: Path
    server: Server
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, user: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        r = httpx.request(method, self.server.url + "/api/v1" + path, headers=headers, timeout=30, **kwargs)
        assert r.status_code < 300, f"{user} {method} {path}: {r.status_code} {r.text}"
        return r.json()


def make_world(tmp: Path, ticket_url: str | None = "https://jira.example.com/browse/{ticket}") -> Iterator[World]:
    effects = tmp / "effects"
    effects.mkdir(parents=True)
    repo = tmp / "shop"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    files = {**SCRIPTS, "scripts/rollout.sh": ROLLOUT, "conveyor.yml": browser_config(effects)}
    commit(repo, files, "Shop: first version")
    git(repo, "branch", "develop")
    database_url = f"sqlite:///{tmp / 'conveyor.db'}"
    db = Database(database_url)
    db.migrate()
    now = datetime.now(UTC)
    tokens = {}
    with db.begin() as conn:
        for name, role in ROLES.items():
            tokens[name] = create_token(conn, add_user(conn, name, [role], now, password(name)), now)
    db.dispose()
    server = Server(home=tmp / "home", database_url=database_url, poll_interval=0)
    server.token = tokens["ada"]
    if ticket_url:
        original_env = server.env
        server.env = lambda: {**original_env(), "CONVEYOR_TICKET_URL": ticket_url}  # type: ignore[method-assign]
    server.start()
    world = World(repo, effects, server, tokens)
    world.api("ada", "POST", "/services", json={"source": str(repo)})
    try:
        yield world
    finally:
        server.stop()
