"""`conveyor rollback --with-database` (docs/database.md): the process document's database rollback
as one durable deployment. v2's migration dropped users.name; its migrate.down adds it back. Under
steady load through the local target's router, no request fails outside the maintenance window
(inside it: 503 with Retry-After, counted apart); a SIGKILL of the server during the database step
resumes it, and each effect happens once."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Pacer, wait_until
from tests.schema.schema_world import (
    MIGRATE_WITH_DOWN,
    SchemaSite,
    drop_name_release,
    start_schema_site,
    stop_schema_site,
)

STEPS = ["prepare", "maintenance_on", "database", "rollout", "maintenance_off", "announce"]


@dataclass
class Traffic:
    """GET /version over keep-alive, ``rate`` a second; each answer sorted as served (200),
    maintenance (503 with Retry-After) or failed (anything else, a reset, a timeout)."""

    port: int
    rate: float = 200.0
    served: list[tuple[float, str]] = field(default_factory=list)  # (time, version)
    maintenance: list[float] = field(default_factory=list)
    failed: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        pacer = Pacer(self.rate)
        while not self._stop.is_set():
            pacer.wait(self._stop)
            try:
                conn.request("GET", "/version")
                response = conn.getresponse()
                body = response.read()
                now = time.monotonic()
                if response.status == 200:
                    self.served.append((now, json.loads(body)["version"]))
                elif response.status == 503 and response.getheader("Retry-After"):
                    self.maintenance.append(now)
                else:
                    self.failed.append((now, f"{response.status} {body[:100]!r}"))
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.failed.append((time.monotonic(), f"{type(exc).__name__}: {exc}"))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def stop(self) -> Traffic:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=15)
        return self

    def report(self) -> dict[str, Any]:
        window = (self.maintenance[-1] - self.maintenance[0]) if self.maintenance else 0.0
        return {
            "served": len(self.served),
            "maintenance_503": len(self.maintenance),
            "failed": len(self.failed),
            "window_seconds_seen_by_clients": round(window, 3),
            "failures": self.failed[:5],
        }


def _site(tmp_path: Path, app_database: str, process: bool = False) -> SchemaSite:
    s = start_schema_site(tmp_path, f"sqlite:///{tmp_path / 'conveyor.db'}", app_database, process=process)
    s.deploy("v1.0.0")
    drop_name_release(s)
    s.deploy("v2.0.0", acknowledge=True)
    assert s.columns() == ["id"]
    return s


@pytest.fixture
def site(tmp_path: Path, app_database: str) -> Iterator[SchemaSite]:
    s = _site(tmp_path, app_database)
    try:
        yield s
    finally:
        stop_schema_site(s)


def _window(d: dict[str, Any]) -> float:
    """The maintenance window by the journal: maintenance_on's end to maintenance_off's end."""
    steps = {s["name"]: s for s in d["steps"]}
    on = datetime.fromisoformat(steps["maintenance_on"]["finished_at"])
    off = datetime.fromisoformat(steps["maintenance_off"]["finished_at"])
    return (off - on).total_seconds()


def test_with_database_brings_the_column_back_and_serves_v1_with_no_failed_request(site: SchemaSite) -> None:
    traffic = Traffic(site.port).start()
    wait_until(lambda: len(traffic.served) > 50, timeout=20, what="steady traffic on v2")
    done = site.cli("eddie", "rollback", "staging", "--with-database", "--wait", "--json")
    v1_answers = lambda: sum(1 for _, v in traffic.served if v == "v1.0.0") >= 100  # noqa: E731
    wait_until(v1_answers, timeout=30, what="a hundred answers of v1 after the window")
    report = traffic.stop().report()
    assert done.returncode == 0, done.stderr + done.stdout
    d = json.loads(done.stdout)
    print(f"\nwith-database rollback under load: {report}; journal window {_window(d):.3f}s")
    assert (d["kind"], d["state"], d["version"]) == ("rollback", "succeeded", "v1.0.0"), d
    assert [s["name"] for s in d["steps"]] == STEPS
    assert site.columns() == ["id", "name"]  # the column is back
    serving = site.serving()
    assert serving is not None and serving["version"] == "v1.0.0"
    assert report["failed"] == 0, report
    assert report["maintenance_503"] > 0, report  # the window was seen, and answered 503 + Retry-After
    first_503, last_503 = traffic.maintenance[0], traffic.maintenance[-1]
    assert {v for t, v in traffic.served if t < first_503} == {"v2.0.0"}
    assert {v for t, v in traffic.served if t > last_503} == {"v1.0.0"}
    undone = [e for e in site.effects() if e.startswith("undone")]
    assert undone == ["undone 0002_drop_name.sql staging"], site.effects()
    requested = site.audit("rollback.requested")[0]
    assert requested["actor"] == "eddie" and requested["details"]["with_database"] is True


def test_with_database_is_refused_without_a_way_to_take_the_database_back(tmp_path: Path, app_database: str) -> None:
    s = start_schema_site(
        tmp_path, f"sqlite:///{tmp_path / 'conveyor.db'}", app_database, migrate="migrate: ./db/migrate.sh\n"
    )
    try:
        s.deploy("v1.0.0")
        drop_name_release(s)
        s.deploy("v2.0.0", acknowledge=True)
        before = s.server.deployments()
        cli = s.cli("eddie", "rollback", "staging", "--with-database")
        assert cli.returncode == 1, cli.stdout
        text = " ".join(cli.stderr.split())
        assert "staging has neither migrate.down nor database.backup/restore" in text, text
        assert s.server.deployments() == before and s.columns() == ["id"]
    finally:
        stop_schema_site(s)


@pytest.mark.server_process
def test_a_crash_in_the_database_step_resumes_and_each_effect_happens_once(tmp_path: Path, app_database: str) -> None:
    s = _site(tmp_path, app_database, process=True)
    try:
        hold = s.effects_dir / "hold-down"
        hold.touch()
        d = s.as_user("eddie", "POST", "/rollbacks", json={"environment": "staging", "with_database": True})
        assert d.status_code == 201, d.text
        deployment_id = d.json()["id"]
        wait_until(lambda: "down start staging to v1.0.0" in s.effects(), timeout=60, what="migrate.down started")
        s.server.kill()  # SIGKILL in the middle of the database step; migrate.down keeps waiting
        s.server.start()
        hold.unlink()
        done = s.server.wait_finished(deployment_id, timeout=120)
        assert done["state"] == "succeeded", done
        assert [st["name"] for st in done["steps"]] == STEPS
        assert s.columns() == ["id", "name"]
        fx = s.effects()
        assert fx.count("down start staging to v1.0.0") == 1, fx  # not run again after the restart
        assert fx.count("undone 0002_drop_name.sql staging") == 1, fx
        assert fx.count("down done staging") == 1, fx
        serving = s.serving()
        assert serving is not None and serving["version"] == "v1.0.0"
    finally:
        stop_schema_site(s)


def test_a_step_failing_after_the_database_step_keeps_maintenance_on_and_never_restores_the_newer_code(
    tmp_path: Path, app_database: str
) -> None:
    smoke = 'smoke: test ! -f "$EFFECTS/fail-smoke"\n'
    s = start_schema_site(
        tmp_path, f"sqlite:///{tmp_path / 'conveyor.db'}", app_database, migrate=MIGRATE_WITH_DOWN + smoke
    )
    try:
        s.deploy("v1.0.0")
        drop_name_release(s)
        s.deploy("v2.0.0", acknowledge=True)
        (s.effects_dir / "fail-smoke").touch()
        done = s.cli("eddie", "rollback", "staging", "--with-database", "--wait", "--json")
        assert done.returncode == 1, done.stdout
        d = json.loads(done.stdout)
        steps = {st["name"]: st["state"] for st in d["steps"]}
        assert d["state"] == "failed" and steps["database"] == "succeeded" and steps["smoke"] == "failed", d
        assert steps["maintenance_off"] == "skipped", steps
        reason = d["reason"]
        assert "maintenance mode stays on in staging: the database was rolled back to v1.0.0's schema" in reason
        assert "v2.0.0's code was not put back over it" in reason and "conveyor maintenance staging off" in reason
        assert s.columns() == ["id", "name"]
        serving = s.serving()
        assert serving is not None and serving["version"] == "v1.0.0"  # not v2 over v1's schema
        page = httpx.get(f"http://127.0.0.1:{s.port}/version", timeout=10)
        assert page.status_code == 503 and page.headers.get("retry-after"), page.status_code
        assert s.effects().count("migrated 0002_drop_name.sql staging") == 1  # v2's migration never ran again
    finally:
        stop_schema_site(s)
