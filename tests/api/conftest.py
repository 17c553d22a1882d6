"""One running server per backend for the API input tests: a service whose production has a deploy
schedule, one deployment already finished in staging, and a user of each role that matters here."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import PG_ADMIN_URL, pg_database
from tests.e2e.harness import SCRIPTS, Server, commit, git

from conveyor.auth.users import add_user, create_token
from conveyor.store.db import Database

ROLES = {"ada": ["admin"], "eve": ["engineer"], "rita": ["release_manager"]}
TARGET = "{kind: command, deploy: ./scripts/deploy.sh, rollback: ./scripts/rollback.sh}"


def config(effects: Path) -> str:
    return textwrap.dedent(
        f"""\
        service: shop
        env: {{EFFECTS: '{effects}'}}
        environments:
          staging:
            branch: main
            target: {TARGET}
          production:
            target: {TARGET}
            gates:
              schedule:
                timezone: America/Los_Angeles
                allow: ["Tue-Thu 10:00-15:00"]
                holidays: US
        """
    )


@dataclass
class ApiWorld:
    server: Server
    root: Path
    backend: str
    tokens: dict[str, str] = field(default_factory=dict)
    deployment_id: str = ""

    def as_(self, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.server.url + path, headers=headers, timeout=60, **kwargs)


def _database(backend: str, tmp: Path, pg_problem: str | None) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'conveyor.db'}"
        return
    if pg_problem:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({pg_problem})")
    with pg_database() as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pg_problem: str | None
) -> Iterator[ApiWorld]:
    root = tmp_path_factory.mktemp(f"api-{request.param}")
    for url in _database(request.param, root, pg_problem):
        effects = root / "effects"
        effects.mkdir()
        repo = root / "shop"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        commit(repo, {**SCRIPTS, "conveyor.yml": config(effects)}, "initial")
        db = Database(url)
        db.migrate()
        now = datetime.now(UTC)
        tokens = {}
        with db.begin() as conn:
            for name, roles in ROLES.items():
                tokens[name] = create_token(conn, add_user(conn, name, roles, now), now)
        db.dispose()
        server = Server(home=root / "home", database_url=url, poll_interval=0)
        server.token = tokens["ada"]
        server.start()
        try:
            world = ApiWorld(server, root, request.param, tokens)
            world.server.ok("POST", "/services", json={"source": str(repo)})
            first = world.as_("eve", "POST", "/api/v1/deployments", json={"environment": "staging", "ref": "main"})
            assert first.status_code == 201, first.text
            world.deployment_id = first.json()["id"]
            world.server.wait_finished(world.deployment_id)
            yield world
        finally:
            server.stop()
