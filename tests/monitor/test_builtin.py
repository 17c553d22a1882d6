"""The built-in signal end to end: a real `conveyor agent` (started the way the server starts it),
a demo-app release answering a share of requests with 500, 200 real requests through its router,
and monitor.builtin.read_window reading the release's window back, the same numbers every time."""

from __future__ import annotations

import math
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from tests.conftest import wait_until
from tests.e2e.local import DEMO_APP, _gone, stop_agent

from conveyor.agent.client import AgentClient, ensure_agent, environment_key
from conveyor.agent.protocol import EnvironmentConfig, HealthBody, OperationBody, ReleaseBody
from conveyor.devserver import free_port
from conveyor.domain.monitoring import Rules, Window, judge
from conveyor.errors import ConveyorError
from conveyor.monitor.builtin import read_window, read_window_answer

SERVICE, ENVIRONMENT = "shop", "production"
KEY = environment_key(SERVICE, ENVIRONMENT)


@dataclass
class World:
    home: Path
    agent: AgentClient
    port: int


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("builtin")
    app = base / "app"
    app.mkdir()
    shutil.copy(DEMO_APP / "app.py", app / "app.py")
    home = base / "home"
    agent = ensure_agent(home)
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
        yield World(home, agent, port)
    finally:
        stop_agent(home)


def test_the_router_counts_what_the_clients_saw_and_rereading_gives_the_same(world: World) -> None:
    before = time.time()
    with httpx.Client(base_url=f"http://127.0.0.1:{world.port}", timeout=10) as client:
        statuses = [client.get("/version").status_code for _ in range(200)]
    after = time.time()
    errors = statuses.count(500)
    assert set(statuses) == {200, 500} and 5 < errors < 80, errors
    since, until = at(math.floor(before)), at(math.ceil(after) + 1)

    answer = wait_until(
        lambda: (a := read_window_answer(world.home, SERVICE, ENVIRONMENT, "v1", since, until)) and a.complete and a,
        timeout=10,
        what="a complete window",
    )
    window = answer.window()
    assert (window.requests, window.errors, window.failed) == (200, errors, 0)
    assert sum(window.latency_buckets) == 200
    assert window.seconds == until.timestamp() - since.timestamp()
    assert answer.recorded_from <= since.timestamp() and answer.release == "v1"

    again = read_window(world.home, SERVICE, ENVIRONMENT, "v1", since, until)
    assert again == window
    middle = at(since.timestamp() + (until.timestamp() - since.timestamp()) / 2)
    first = read_window(world.home, SERVICE, ENVIRONMENT, "v1", since, middle)
    second = read_window(world.home, SERVICE, ENVIRONMENT, "v1", middle, until)
    assert first is not None and second is not None and first.merged(second) == window

    verdict = judge(window, None, Rules(rollback_if={"error_rate": (">", 0.02)}))
    assert verdict.state == "breach", verdict.findings
    assert judge(window, None, Rules(rollback_if={"error_rate": (">", 0.02)}, min_requests=500)).state == (
        "not_enough_traffic"
    )


def test_quiet_release_unknown_environment_and_time_before_the_agent(world: World) -> None:
    now = time.time()
    quiet = read_window(world.home, SERVICE, ENVIRONMENT, "v0", at(now - 60), at(now))
    assert quiet is not None and (quiet.requests, quiet.errors, quiet.failed) == (0, 0, 0)
    assert 0 < quiet.seconds <= 60  # only the seconds since the environment began counting
    assert quiet.latency_buckets == Window().latency_buckets
    assert read_window(world.home, SERVICE, "staging", "v1", at(now - 60), at(now)) is None
    long_ago = read_window_answer(world.home, SERVICE, ENVIRONMENT, "v1", at(now - 86_400), at(now))
    assert long_ago is not None and long_ago.recorded_from > now - 600  # counting began with the environment
    assert long_ago.seconds <= now - long_ago.recorded_from + 1
    with pytest.raises(ValueError, match="no time zone"):
        read_window(world.home, SERVICE, ENVIRONMENT, "v1", datetime(2026, 1, 1), datetime(2026, 1, 2))


def test_the_agent_refuses_a_backwards_interval_and_a_wrong_token(world: World) -> None:
    with pytest.raises(ConveyorError, match="must not be before since"):
        world.agent.window(KEY, "v1", 100.0, 50.0)
    wrong = httpx.get(
        f"{world.agent.url}/v1/environments/{KEY}/windows",
        params={"release": "v1", "since": 0, "until": 1},
        headers={"Authorization": "Bearer nope"},
    )
    assert wrong.status_code == 401


def test_no_agent_is_none(tmp_path: Path) -> None:
    now = time.time()
    assert read_window(tmp_path / "nohome", SERVICE, ENVIRONMENT, "v1", at(now - 60), at(now)) is None


def test_an_agent_gone_since_it_wrote_its_files_is_none(tmp_path: Path) -> None:
    home = tmp_path / "home"
    agent = ensure_agent(home)
    try:
        agent.configure(KEY, EnvironmentConfig(port=free_port()))
        now = time.time()
        assert read_window(home, SERVICE, ENVIRONMENT, "v1", at(now - 60), at(now)) is not None
        assert agent.pid is not None
        os.kill(agent.pid, signal.SIGKILL)  # no goodbye: its files stay, nobody answers
        wait_until(lambda: _gone(agent.pid or 0), timeout=10, what="the agent to die")
        assert (home / "agent" / "agent.json").exists()
        assert read_window(home, SERVICE, ENVIRONMENT, "v1", at(now - 60), at(now)) is None
    finally:
        stop_agent(home)
