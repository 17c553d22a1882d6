"""The local target with real processes: the agent runs the demo app, health-gates a rolling or
blue-green update with zero failed requests, restarts crashed instances, keeps serving while the
server is killed, and rolls back by a router switch inside the quick-rollback window.

Every test runs with both routers: the built-in one and HAProxy (``router: haproxy``), on SQLite
only: the router never touches the database, so PostgreSQL adds time and no coverage (the engine's
PostgreSQL runs are in test_pipeline.py, test_crash.py and the rollback matrix)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import wait_until
from tests.e2e.harness import Server, commit, free_port
from tests.e2e.local import Load, agent_api, get_version, local_config, make_web_repo, stop_agent

from conveyor.agent.haproxy import HAProxyError, find_haproxy

pytestmark = pytest.mark.sqlite_only  # see SQLITE_ONLY_DOC in tests/conftest.py


def _haproxy_missing() -> str:
    try:
        find_haproxy()
    except HAProxyError:
        return "HAProxy is not installed (apt-get install haproxy); skipping the router: haproxy runs"
    return ""


@dataclass
class Web:
    repo: Path
    server: Server
    staging: int
    production: int

    def deploy(self, env: str, ref: str = "main") -> dict:
        d = self.server.ok("POST", "/deployments", json={"environment": env, "ref": ref})
        return self.server.wait_finished(d["id"], timeout=90)


def make_web(tmp_path: Path, database_url: str, process: bool = True, **config: str) -> Iterator[Web]:
    """A child-process server by default: these tests time the router under load from a thread of
    this process, which an in-process server would share the interpreter with."""
    staging, production = free_port(), free_port()
    repo = make_web_repo(tmp_path / "web", local_config(staging, production, **config))
    server = Server(home=tmp_path / "home", database_url=database_url, poll_interval=0, process=process)
    server.start()
    server.ok("POST", "/services", json={"source": str(repo)})
    try:
        yield Web(repo, server, staging, production)
    finally:
        server.stop()
        stop_agent(server.home)


@pytest.fixture(params=["builtin", "haproxy"])
def router(request: pytest.FixtureRequest) -> str:
    """The router kind written into each target; asked for before the database is made."""
    if request.param == "haproxy" and (missing := _haproxy_missing()):
        pytest.skip(missing)
    return str(request.param)


@pytest.fixture
def web(tmp_path: Path, router: str, database_url: str) -> Iterator[Web]:
    yield from make_web(tmp_path, database_url, router=router)


@pytest.fixture
def web_short_window(tmp_path: Path, router: str) -> Iterator[Web]:
    yield from make_web(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", quick_rollback="1s", router=router)


def test_rolling_and_blue_green_updates_drop_no_request(web: Web) -> None:
    first = web.deploy("staging")
    assert first["state"] == "succeeded", first
    v1 = first["version"]
    assert get_version(web.staging) == v1
    commit(web.repo, {"VERSION": "two\n"}, "web v2")
    load = Load(web.staging).start()
    wait_until(lambda: len(load.results) > 50, what="load to flow")
    second = web.deploy("staging")
    time.sleep(0.3)  # let the load run on the new release for a moment (it is measured, not waited on)
    load.stop()
    assert second["state"] == "succeeded", second
    assert load.failures == [], load.failures[:5]
    assert {v for _t, _s, v in load.results} == {v1, second["version"]}
    assert load.results[-1][2] == second["version"]
    state = agent_api(web.server.home).get("/v1/environments/web.staging").json()
    assert [i["state"] for i in state["active"]["instances"]] == ["ready", "ready"]
    assert state["warm"]["version"] == v1  # kept warm for quick rollback
    counters = state["counters"]  # per release, from either router
    assert counters[v1]["requests"] > 0 and counters[second["version"]]["requests"] > 0, counters
    assert all(c["failed"] == 0 and c["errors_5xx"] == 0 for c in counters.values()), counters

    # blue-green on production: all new instances first, then one switch
    assert web.deploy("production")["state"] == "succeeded"
    commit(web.repo, {"VERSION": "three\n"}, "web v3")
    load = Load(web.production).start()
    wait_until(lambda: len(load.results) > 50, what="load to flow")
    third = web.deploy("production")
    load.stop()
    assert third["state"] == "succeeded" and third["version"] == "v0.2.0"
    assert load.failures == []
    assert get_version(web.production) == "v0.2.0"


def test_unhealthy_release_gets_no_traffic_and_the_old_one_serves(web: Web) -> None:
    good = web.deploy("staging")
    commit(web.repo, {"FAIL_HEALTH": "1\n"}, "broken health")
    load = Load(web.staging).start()
    bad = web.deploy("staging")
    load.stop()
    assert bad["state"] == "failed"
    assert "did not become healthy" in bad["reason"] and "GET /healthz: 503" in bad["reason"]
    assert load.failures == []
    assert load.versions_after(0) == {good["version"]}
    status = web.server.ok("GET", "/status", params={"environment": "staging"})
    assert status[0]["current"]["version"] == good["version"]


def test_crashed_instance_is_restarted(web: Web) -> None:
    web.deploy("staging")
    agent = agent_api(web.server.home)
    victim = agent.get("/v1/environments/web.staging").json()["active"]["instances"][0]
    os.kill(victim["pid"], signal.SIGKILL)

    def restarted() -> bool:
        inst = agent.get("/v1/environments/web.staging").json()["active"]["instances"][0]
        return inst["restarts"] == 1 and inst["state"] == "ready" and inst["pid"] != victim["pid"]

    wait_until(restarted, timeout=20, what="the instance to be restarted and ready")
    assert get_version(web.staging)


def test_agent_keeps_serving_while_the_server_is_killed_and_restarted(web: Web) -> None:
    v1 = web.deploy("staging")["version"]
    load = Load(web.staging).start()
    web.server.kill()
    wait_until(lambda: len(load.results) > 200, what="requests while the server is down")
    web.server.start()
    load.stop()
    assert load.failures == [] and load.versions_after(0) == {v1}
    commit(web.repo, {"VERSION": "after restart\n"}, "v2")
    assert web.deploy("staging")["state"] == "succeeded"


def test_rollback_inside_the_window_is_a_router_switch(web: Web) -> None:
    v1 = web.deploy("staging")["version"]
    commit(web.repo, {"VERSION": "two\n"}, "v2")
    v2 = web.deploy("staging")["version"]
    load = Load(web.staging).start()
    wait_until(lambda: len(load.results) > 20, what="load")
    asked = time.monotonic()
    d = web.server.ok("POST", "/rollbacks", json={"environment": "staging"})
    wait_until(lambda: load.results and load.results[-1][2] == v1, what="traffic on the previous release")
    switched = time.monotonic() - asked
    done = web.server.wait_finished(d["id"])
    load.stop()
    assert done["state"] == "succeeded" and done["version"] == v1
    assert load.failures == []
    logs = web.server.ok("GET", f"/deployments/{d['id']}/logs")
    rollout = next(s for s in logs["steps"] if s["name"] == "rollout")
    assert "switched to warm" in rollout["message"]
    assert switched < 2.0, switched  # the figure itself is measured by bench/zero_downtime.py
    assert all(v == v1 for t, _s, v in load.results if t > asked + switched)
    assert v2 != v1


def test_rollback_after_the_window_starts_the_old_release_again(web_short_window: Web) -> None:
    web = web_short_window
    v1 = web.deploy("staging")["version"]
    commit(web.repo, {"VERSION": "two\n"}, "v2")
    web.deploy("staging")
    agent = agent_api(web.server.home)
    wait_until(
        lambda: agent.get("/v1/environments/web.staging").json()["warm"] is None,
        timeout=10,
        what="the warm release to expire",
    )
    d = web.server.ok("POST", "/rollbacks", json={"environment": "staging"})
    done = web.server.wait_finished(d["id"])
    assert done["state"] == "succeeded" and done["version"] == v1
    logs = web.server.ok("GET", f"/deployments/{d['id']}/logs")
    rollout = next(s for s in logs["steps"] if s["name"] == "rollout")
    assert "waiting for health checks" in rollout["output"]
    assert get_version(web.staging) == v1
