"""Monitoring after a deploy on the local target, with real processes: the agent's router counts
each release's requests, the deployment watches them for ``for`` and rolls a bad release back.

The service is the demo app; a release is made bad by committing an ``ERROR_RATE`` file (the app
answers that share of requests with 500). Steady traffic is the ``Load`` helper."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from tests.conftest import wait_until
from tests.e2e.harness import Server, commit, free_port
from tests.e2e.local import Load, get_version, make_web_repo, stop_agent

from conveyor.devserver import make_token

MONITOR = '{for: 6s, interval: 1s, min_requests: 50, rollback_if: {error_rate: "> 2%"}, regression: {error_rate: 2x}}'


def config(port: int, monitor: str = MONITOR) -> str:
    return textwrap.dedent(
        f"""\
        service: web
        run: python3 app.py --port $PORT
        health: {{path: /healthz, interval: 100ms, successes: 2, timeout: 10s}}
        environments:
          production:
            target: {{kind: local, port: {port}, replicas: 2}}
            rollout: {{strategy: blue_green}}
            tag: {{bump: minor}}
            monitor: {monitor}
        """
    )


@dataclass
class Web:
    repo: Path
    server: Server
    port: int

    def request(self) -> dict[str, Any]:
        d: dict[str, Any] = self.server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
        return d

    def deploy(self) -> dict[str, Any]:
        return self.server.wait_finished(self.request()["id"], timeout=120)

    def monitoring(self, deployment_id: str) -> dict[str, Any]:
        view: dict[str, Any] = self.server.ok("GET", f"/deployments/{deployment_id}/monitoring")
        return view


def make_web(tmp_path: Path, database_url: str, process: bool) -> Iterator[Web]:
    port = free_port()
    repo = make_web_repo(tmp_path / "web", config(port))
    server = Server(home=tmp_path / "home", database_url=database_url, poll_interval=0, process=process)
    server.start()
    server.ok("POST", "/services", json={"source": str(repo)})
    try:
        yield Web(repo, server, port)
    finally:
        server.stop()
        stop_agent(server.home)


@pytest.fixture
def web(tmp_path: Path, database_url: str) -> Iterator[Web]:
    yield from make_web(tmp_path, database_url, process=True)


@pytest.fixture
def sqlite_web(tmp_path: Path, database_url: str) -> Iterator[Web]:
    """On SQLite only: whether a healthy release is kept does not depend on the database (the
    other tests here run on both), and three monitored deploys are the longest test of the file."""
    if not database_url.startswith("sqlite"):
        pytest.skip("runs on SQLite only, see the fixture")
    yield from make_web(tmp_path, database_url, process=True)


def first_release(web: Web) -> dict[str, Any]:
    """v0.1.0 under load: it has no previous release, and passes its window."""
    load = Load(web.port)
    d = web.request()
    wait_until(lambda: _serves(web.port), timeout=60, what="v0.1.0 to serve")
    load.start()
    try:
        done = web.server.wait_finished(d["id"], timeout=120)
    finally:
        load.stop()
    assert done["state"] == "succeeded", done
    return done


def _serves(port: int) -> bool:
    try:
        return bool(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200)
    except httpx.HTTPError:
        return False


@pytest.mark.sqlite_only  # the monitoring rules through a real router; the PostgreSQL run is the killed server's
def test_a_release_answering_ten_percent_500s_is_rolled_back_with_the_numbers(web: Web) -> None:
    first_release(web)
    commit(web.repo, {"ERROR_RATE": "0.1"}, "bad release: one request in ten fails")
    load = Load(web.port).start()
    try:
        d = web.request()
        done = web.server.wait_finished(d["id"], timeout=120)
        wait_until(lambda: load.results and load.results[-1][2] == "v0.1.0", timeout=10, what="v0.1.0 to serve")
    finally:
        load.stop()
    assert done["state"] == "rolled_back", done
    assert "monitoring breach: error_rate" in done["reason"] and "v0.1.0 restored and serving" in done["reason"]
    assert get_version(web.port) == "v0.1.0"
    view = web.monitoring(d["id"])
    assert view["monitoring"]["outcome"] == "breach"
    breach = view["monitoring"]["breach"]
    (error_rate,) = [f for f in breach["findings"] if f["signal"] == "error_rate"][:1]
    assert 0.04 < error_rate["value"] < 0.2 and error_rate["breached"], breach
    assert error_rate["threshold"] in ("> 2%", "2x previous") or error_rate["threshold"].startswith(">")
    assert len(view["samples"]) < 6, "rolled back at the first breach, not at the end of the window"
    tags = web.server.ok("GET", "/deployments/" + d["id"])
    assert "tag" not in (tags.get("reason") or "")  # no tag claims a rolled-back release passed
    # the chart of the page, drawn from the stored samples, as a signed-in engineer sees it
    make_token(web.server.database_url, "vic", ["engineer"], password="vic-secret-pw")
    with httpx.Client(base_url=web.server.url, timeout=20) as browser:
        csrf = browser.get("/login").cookies["conveyor_login"]
        form = {"username": "vic", "password": "vic-secret-pw", "csrf_token": csrf, "next": "/"}
        assert browser.post("/login", data=form).status_code in (200, 303)
        chart = browser.get(f"/deployments/{d['id']}/monitoring.svg")
    assert chart.status_code == 200 and chart.headers["content-type"].startswith("image/svg+xml"), chart.text
    svg = ElementTree.fromstring(chart.text)
    classes = {element.get("class") for element in svg.iter()}
    assert {"threshold", "marker deploy", "marker breach", "breach"} <= classes, classes


def test_a_healthy_release_under_load_is_not_rolled_back(sqlite_web: Web) -> None:
    web = sqlite_web
    first_release(web)
    load = Load(web.port).start()
    try:
        for run in range(3):
            commit(web.repo, {"notes.txt": f"healthy change {run}\n"}, f"healthy {run}")
            done = web.deploy()
            assert done["state"] == "succeeded", done
            view = web.monitoring(done["id"])
            assert view["monitoring"]["outcome"] == "passed", view["monitoring"]
            assert [s["seq"] for s in view["samples"]] == list(range(6))
    finally:
        load.stop()
    assert not [f for f in load.failures], load.failures[:5]


@pytest.mark.sqlite_only  # the monitoring rules through a real router; the PostgreSQL run is the killed server's
def test_three_requests_in_the_window_are_not_enough_traffic_not_a_rollback(web: Web) -> None:
    commit(web.repo, {"ERROR_RATE": "0.34"}, "one request in three fails, but nobody calls")
    d = web.request()
    wait_until(lambda: web.server.deployment(d["id"])["state"] == "monitoring", timeout=60, what="monitoring")
    for _ in range(3):
        httpx.get(f"http://127.0.0.1:{web.port}/version", timeout=5)
    done = web.server.wait_finished(d["id"], timeout=60)
    assert done["state"] == "succeeded", done
    assert done["reason"].startswith("not enough traffic to judge: 3 requests"), done["reason"]
    view = web.monitoring(d["id"])
    assert view["monitoring"]["outcome"] == "not_enough_traffic"
    assert sum(s["requests"] + s["failed"] for s in view["samples"]) == 3


@pytest.mark.server_process
def test_a_server_killed_during_monitoring_resumes_the_same_window(web: Web) -> None:
    first_release(web)
    commit(web.repo, {"notes.txt": "watched across a crash\n"}, "healthy")
    load = Load(web.port).start()
    try:
        d = web.request()
        wait_until(lambda: len(web.monitoring(d["id"])["samples"]) >= 2, timeout=60, what="two samples")
        started = web.monitoring(d["id"])["monitoring"]["started_at"]
        web.server.kill()
        web.server.start()
        done = web.server.wait_finished(d["id"], timeout=60)
    finally:
        load.stop()
    assert done["state"] == "succeeded", done
    view = web.monitoring(d["id"])
    assert view["monitoring"]["started_at"] == started, "the window did not restart"
    assert [s["seq"] for s in view["samples"]] == list(range(6)), "each interval stored once"
    assert all(s["requests"] > 0 for s in view["samples"]), view["samples"]
    assert view["monitoring"]["outcome"] == "passed"
