"""The server's app in the test's process through Starlette's TestClient: no port, no subprocess,
the engine (DBOS) started by the app's own lifespan, and a clock the test controls. One at a time
per process (the engine is process-wide)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient
from tests.conftest import wait_until

from conveyor.app import create_app
from conveyor.devserver import make_token, server_env, settings_from_env
from conveyor.domain.clock import Clock
from conveyor.runtime import Runtime
from conveyor.store.db import Database

FINISHED = {"succeeded", "failed", "rolled_back", "cancelled"}


@dataclass
class App:
    client: TestClient
    rt: Runtime
    tokens: dict[str, str]

    def as_(self, user: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}", **kwargs.pop("headers", {})}
        return self.client.request(method, "/api/v1" + path, headers=headers, **kwargs)

    def ok(self, user: str, method: str, path: str, **kwargs: Any) -> Any:
        r = self.as_(user, method, path, **kwargs)
        assert r.status_code < 300, f"{user} {method} {path}: {r.status_code} {r.text}"
        return r.json()

    def sign_in(self, user: str) -> None:
        """Sign the client in to the dashboard as ``user`` (its cookies hold the session)."""
        form = self.client.get("/login")
        found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert found, form.text
        data = {"username": user, "password": password(user), "csrf_token": found.group(1), "next": "/"}
        signed_in = self.client.post("/login", data=data, follow_redirects=False)
        assert signed_in.status_code == 303, signed_in.text

    def wait_finished(self, deployment_id: str, user: str = "admin", timeout: float = 60) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            d: dict[str, Any] = self.ok(user, "GET", f"/deployments/{deployment_id}")
            return d if d["state"] in FINISHED else None

        return wait_until(done, timeout=timeout, what=f"deployment {deployment_id} to finish")


def password(user: str) -> str:
    return f"{user}-in-process-password"


@contextmanager
def app(
    home: Path, database_url: str, users: dict[str, list[str]], clock: Clock | None = None, poll_interval: float = 0
) -> Iterator[App]:
    """The app on ``database_url`` with ``users`` (name -> roles), each with a token, and user
    ``admin`` (admin, release_manager) if not among them."""
    users = {"admin": ["admin", "release_manager"], **users}
    tokens = {name: make_token(database_url, name, roles, password=password(name)) for name, roles in users.items()}
    env = server_env(home, database_url, 0, poll_interval=poll_interval)
    env["CONVEYOR_SOURCE_LOCAL_ROOTS"] = str(home.parent)  # tests register checkouts made next to HOME
    settings = settings_from_env(env)
    rt = Runtime(settings=settings, db=Database(settings.app_database_url))
    if clock is not None:
        rt.clock = clock
    with TestClient(create_app(rt)) as client:
        yield App(client, rt, tokens)
