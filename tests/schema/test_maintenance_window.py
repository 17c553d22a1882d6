"""The maintenance window (docs/database.md): staging's migration took longer than
maintenance_over, so production's deploy of that commit is held by the migrations gate, which names
the staging duration and asks for --maintenance; with --maintenance the migrate step turns the
environment's maintenance mode on (the agent's router answers 503 with Retry-After) for the
migration only, and the environment serves again after it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from tests.conftest import PG_ADMIN_URL, wait_until
from tests.e2e.harness import commit, free_port
from tests.e2e.local import get_version
from tests.schema.sql_world import env_block, sql_world

USERS = "CREATE TABLE users (id bigint PRIMARY KEY, name text);\n"
SLOW = "SELECT pg_sleep(2);\nALTER TABLE users ADD COLUMN nickname text;\n"


@dataclass
class Watcher:
    """GET /version through the router every 20ms: (wall time, status, Retry-After, version)."""

    port: int
    seen: list[tuple[float, int, str | None, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Watcher:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(0.02):
                try:
                    r = client.get(f"http://127.0.0.1:{self.port}/version")
                except httpx.HTTPError:
                    continue
                version = r.json()["version"] if r.status_code == 200 else ""
                self.seen.append((time.time(), r.status_code, r.headers.get("retry-after"), version))

    def stop(self) -> Watcher:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        return self


def _gate(d: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((g for g in d["gates"] if g["gate"] == name), None)


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def staging_database(app_database: str) -> Iterator[str]:
    """A second app database, staging's own (production's is ``app_database``)."""
    name = f"{app_database.rsplit('/', 1)[1]}_staging"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield app_database.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_a_slow_staging_migration_needs_a_maintenance_window_in_production(
    tmp_path: Path, app_database: str, staging_database: str
) -> None:
    staging_port, production_port = free_port(), free_port()
    migrate = "{run: ./scripts/migrate.sh, sql: 'cat db/*.sql', maintenance_over: 1s"
    staging = f"env: {{APP_DB: '{staging_database}'}}\nmigrate: {migrate}, lint: false}}"
    environments = env_block("staging", port=staging_port, body=staging) + env_block(
        "production",
        port=production_port,
        body=f"gates: {{staging_verified: true}}\nmigrate: {migrate}}}",
    )
    with sql_world(tmp_path, app_database, environments, {"001_users.sql": USERS}, local=True) as w:
        # v1: a quick migration, through staging to production without a window
        assert w.deploy("staging")["state"] == "succeeded"
        first = w.deploy("production", timeout=120)
        assert first["state"] == "succeeded", first["reason"]
        v1 = get_version(production_port)

        # v2's migration takes over 2s in staging: over maintenance_over (1s)
        commit(w.repo, {"db/002_slow.sql": SLOW}, "users get a nickname, slowly")
        staged = w.deploy("staging")
        assert staged["state"] == "succeeded", staged["reason"]
        staging_run = w.migration_run(staged["id"])
        assert staging_run is not None and staging_run["seconds"] >= 2.0

        held = w.server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
        gate = wait_until(
            lambda: (g := _gate(w.server.deployment(held["id"]), "migrations")) and not g["passed"] and g,
            timeout=60,
            what="the migrations gate to hold production",
        )
        took = f"the migration took {staging_run['seconds']:.1f}s in staging, over maintenance_over (1s)"
        assert took in gate["reason"] and "--maintenance" in gate["reason"], gate["reason"]
        assert w.server.deployment(held["id"])["state"] == "pending"
        w.server.ok("POST", f"/deployments/{held['id']}/cancel")
        assert "nickname" not in w.columns("users")  # production's migration did not run

        watcher = Watcher(production_port).start()
        d = w.deploy("production", timeout=120, maintenance=True)
        wait_until(lambda: get_version(production_port) != v1, timeout=30, what="v2 to serve")
        count = len(watcher.seen)
        wait_until(lambda: len(watcher.seen) > count + 5, timeout=10, what="a few samples of v2 serving")
        watcher.stop()
        assert d["state"] == "succeeded", d["reason"]
        assert "maintenance mode on in production" in next(s for s in d["steps"] if s["name"] == "migrate")["message"]
        assert _gate(d, "migrations")["passed"]
        run = w.migration_run(d["id"])
        assert run is not None and run["maintenance"] == 1 and run["ok"] == 1 and run["seconds"] >= 2.0
        assert "nickname" in w.columns("users")

        step = next(s for s in d["steps"] if s["name"] == "migrate")
        start, end = _at(step["started_at"]), _at(step["finished_at"])
        down = [s for s in watcher.seen if s[1] == 503]
        assert down, "no request saw the maintenance page"
        assert all(retry == "120" for _t, _status, retry, _v in down)
        # the page was up during the migrate step only: 200s before it and after it
        assert all(start - 0.5 <= t <= end + 0.5 for t, *_ in down), (start, end, down[0], down[-1])
        assert all(status in (200, 503) for _t, status, *_ in watcher.seen)
        assert any(status == 200 and v == v1 and t < start for t, status, _r, v in watcher.seen)
        assert watcher.seen[-1][1] == 200 and watcher.seen[-1][3] != v1
        print(
            f"\nmaintenance window: {len(down)} requests got 503 over {down[-1][0] - down[0][0]:.2f}s "
            f"of a {end - start:.2f}s migrate step (staging's migration: {staging_run['seconds']:.2f}s)"
        )


HELD_SH = """\
#!/bin/sh
echo "migrate start $CONVEYOR_VERSION" >> "$EFFECTS/effects.log"
while [ -f "$EFFECTS/hold-migrate" ]; do sleep 0.05; done
./scripts/migrate.sh || exit $?
echo "migrate done $CONVEYOR_VERSION" >> "$EFFECTS/effects.log"
"""


@pytest.mark.server_process  # SIGKILL needs a server in its own process
def test_a_server_killed_during_the_window_turns_maintenance_off_after_the_one_migration(
    tmp_path: Path, app_database: str
) -> None:
    port, effects = free_port(), tmp_path / "effects"
    effects.mkdir()
    body = f"env: {{EFFECTS: '{effects}'}}\nmigrate: {{run: ./scripts/held.sh, lint: false}}"
    staging = env_block("staging", port=port, body=body)
    with sql_world(tmp_path, app_database, staging, {"001_users.sql": USERS}, local=True, process=True) as w:
        commit(w.repo, {"scripts/held.sh": HELD_SH}, "a migrate command that can be held")
        assert w.deploy("staging")["state"] == "succeeded"
        v1 = get_version(port)
        commit(w.repo, {"db/002_nickname.sql": "ALTER TABLE users ADD COLUMN nickname text;\n"}, "nickname")
        hold = effects / "hold-migrate"
        hold.touch()
        d = w.server.ok("POST", "/deployments", json={"environment": "staging", "ref": "main", "maintenance": True})
        log = effects / "effects.log"
        wait_until(lambda: log.read_text().count("migrate start") == 2, what="v2's migration to start")
        status = lambda: httpx.get(f"http://127.0.0.1:{port}/version", timeout=5).status_code  # noqa: E731
        wait_until(lambda: status() == 503, what="the maintenance page")

        w.server.kill()  # mid-migration: the migration and the maintenance page outlive the server
        assert status() == 503
        w.server.start()
        hold.unlink()

        final = w.server.wait_finished(d["id"], timeout=90)
        assert final["state"] == "succeeded", final["reason"]
        lines = log.read_text().splitlines()
        assert sum(1 for e in lines if e.startswith("migrate start")) == 2, lines  # v1's and v2's, once each
        assert sum(1 for e in lines if e.startswith("migrate done")) == 2, lines
        assert "nickname" in w.columns("users")
        migrate = next(s for s in final["steps"] if s["name"] == "migrate")
        assert "maintenance mode off in staging" in migrate["message"], migrate["message"]
        run = w.migration_run(d["id"])
        assert run is not None and run["ok"] == 1 and run["maintenance"] == 1
        assert status() == 200 and get_version(port) not in ("", v1)


def test_a_failed_migration_still_turns_maintenance_off(tmp_path: Path, app_database: str) -> None:
    port = free_port()
    staging = env_block("staging", port=port, body="migrate: {run: ./scripts/migrate.sh, lint: false}")
    with sql_world(tmp_path, app_database, staging, {"001_users.sql": USERS}, local=True) as w:
        assert w.deploy("staging")["state"] == "succeeded"
        v1 = get_version(port)
        commit(w.repo, {"db/002_bad.sql": "ALTER TABLE no_such_table ADD COLUMN x text;\n"}, "a broken migration")
        d = w.deploy("staging", maintenance=True)
        assert d["state"] == "failed"
        migrate = next(s for s in d["steps"] if s["name"] == "migrate")
        assert "no_such_table" in migrate["message"], migrate["message"]
        assert "maintenance mode on in staging; maintenance mode off in staging" in migrate["message"]
        assert w.migration_run(d["id"])["maintenance"] == 1
        r = httpx.get(f"http://127.0.0.1:{port}/version", timeout=5)
        assert r.status_code == 200 and r.json()["version"] == v1  # the previous release serves again
