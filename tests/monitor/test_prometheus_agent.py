"""The Prometheus signal over the agent's own metrics: a real `conveyor agent` (started the way the
server starts it) runs a demo-app release that answers 15% of requests with 500; the real
`prometheus` scrapes the agent's token-protected /metrics with the token file, as
docs/monitoring-signals.md tells users to; the documented query over the router's counters gives
the clients' own error ratio, a breach of "> 2%" and within "> 50%"."""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import pytest
from tests.conftest import wait_until
from tests.e2e.local import DEMO_APP, stop_agent
from tests.monitor.promstack import Binary, prometheus, require

from conveyor.agent.client import ensure_agent, environment_key
from conveyor.agent.protocol import EnvironmentConfig, HealthBody, OperationBody, ReleaseBody
from conveyor.devserver import free_port
from conveyor.monitor.prometheus import QueryContext, instant_query, prometheus_findings
from conveyor.spec.monitor_signals import QuerySpec

SERVICE, ENVIRONMENT = "shop", "production"
KEY = environment_key(SERVICE, ENVIRONMENT)
WHERE = 'environment="{service}.{environment}",release="{version}"'  # the agent's labels
ERRORS = f"sum(conveyor_router_5xx_total{{{WHERE}}}) / sum(conveyor_router_requests_total{{{WHERE}}})"


@dataclass
class World:
    port: int  # the release's router
    prometheus: Binary


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require("prometheus")
    base = tmp_path_factory.mktemp("agent-metrics")
    app = base / "app"
    app.mkdir()
    shutil.copy(DEMO_APP / "app.py", app / "app.py")
    home = base / "home"
    agent = ensure_agent(home)
    prom: Binary | None = None
    try:
        port = free_port()
        agent.configure(KEY, EnvironmentConfig(port=port))
        release = ReleaseBody(
            version="v1",
            sha="a" * 40,
            workdir=str(app),
            command=f"exec {shlex.quote(sys.executable)} app.py",
            env={"CONVEYOR_VERSION": "v1", "DEMO_ERROR_RATE": "0.15"},
        )
        health = HealthBody(interval=0.05, successes=1, timeout=15)
        agent.operate(KEY, OperationBody(id="op-1", release=release, health=health))
        done = wait_until(
            lambda: (op := agent.operation(KEY, "op-1")).state != "running" and op, timeout=30, what="the deploy"
        )
        assert done.state == "succeeded", done
        address = urlsplit(agent.url).netloc
        prom = prometheus(base / "prometheus", address, token_file=home / "agent" / "token").start()
        yield World(port, prom)
    finally:
        if prom is not None:
            prom.stop()
        stop_agent(home)


def test_the_documented_query_over_the_agents_counters_sees_the_clients_error_ratio(world: World) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{world.port}", timeout=10) as client:
        statuses = [client.get("/version").status_code for _ in range(200)]
    errors = statuses.count(500)
    assert set(statuses) == {200, 500} and 5 < errors < 80, errors

    scraped = 'sum(conveyor_router_requests_total{environment="shop.production",release="v1"})'
    try:
        wait_until(lambda: instant_query(world.prometheus.url, scraped) == 200, timeout=20, what="200 requests scraped")
    except AssertionError:
        raise AssertionError(world.prometheus.output()) from None

    queries = {
        "error_ratio": QuerySpec(query=ERRORS, threshold="> 2%", unit="ratio"),
        "lenient": QuerySpec(query=ERRORS, threshold="> 50%", unit="ratio"),
        "previous": QuerySpec(query=ERRORS.replace("{version}", "{previous_version}"), threshold="> 2%"),
    }
    context = QueryContext(SERVICE, ENVIRONMENT, "v1", "v0", interval=5.0)
    found = {f.signal: f for f in prometheus_findings(queries, world.prometheus.url, datetime.now(UTC), context)}
    assert found["error_ratio"].value == pytest.approx(errors / 200)
    assert found["error_ratio"].breached and not found["lenient"].breached
    assert (found["previous"].value, found["previous"].breached) == (None, False)  # v0 never served here
