"""supervisor.Instance with real processes: the demo app starts and becomes ready, crashes are
restarted, a failing health check never becomes ready, and stop() drains and leaves nothing behind."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from conveyor.agent.supervisor import HealthConfig, Instance, InstanceState, ReleaseSpec

DEMO_APP = Path(__file__).resolve().parents[2] / "examples" / "demo-app" / "app.py"
PYTHON = shlex.quote(sys.executable)
DEMO = f"exec {PYTHON} app.py"  # PORT comes from the environment
# failures=10: a crashed process must show as crashed, not first as unhealthy from refused checks
FAST = HealthConfig(path="/healthz", interval=0.05, successes=2, failures=10, timeout=15)


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the demo app, so no switch file in examples/ can leak into these tests."""
    path = tmp_path_factory.mktemp("demo-app")
    shutil.copy(DEMO_APP, path / "app.py")
    return path


async def eventually(check: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class Recorder:
    """The on_change callback: every state an instance moved to, in order."""

    def __init__(self) -> None:
        self.states: list[InstanceState] = []
        self.instance: Instance | None = None
        self.hook: Callable[[], None] | None = None

    def __call__(self) -> None:
        assert self.instance is not None
        self.states.append(self.instance.state)
        if self.hook:
            self.hook()


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., tuple[Instance, Recorder]]]:
    made: list[Instance] = []

    def factory(
        workdir: Path, command: str, env: dict[str, str] | None = None, health: HealthConfig = FAST
    ) -> tuple[Instance, Recorder]:
        recorder = Recorder()
        release = ReleaseSpec("v1", "a" * 40, str(workdir), command, {"CONVEYOR_VERSION": "v1", **(env or {})})
        instance = Instance(f"web-v1-{len(made) + 1}", release, health, recorder)
        recorder.instance = instance
        made.append(instance)
        return instance, recorder

    yield factory
    for instance in made:
        if instance.state != InstanceState.STOPPED:
            await instance.stop(grace=2)


async def test_demo_app_starts_and_becomes_ready(make, app_dir: Path) -> None:
    inst, rec = make(app_dir, DEMO)
    assert inst.state == InstanceState.STARTING
    await inst.start()
    assert await inst.wait_ready(15)
    assert rec.states == [InstanceState.READY]
    doc = inst.as_json()
    assert doc["state"] == "ready"
    assert (doc["id"], doc["version"], doc["port"], doc["restarts"]) == ("web-v1-1", "v1", inst.port, 0)
    assert doc["pid"] == inst.pid
    assert doc["last_health"].startswith("GET /healthz: 200")
    status, _, body = await asyncio.to_thread(http_get, inst.port, "/version")
    assert status == 200
    assert json.loads(body)["version"] == "v1"
    assert json.loads(body)["pid"] == inst.pid  # PORT reached the app; exec kept the pid
    await eventually(lambda: any("demo-app listening on 127.0.0.1:" in line for line in inst.logs), what="log")


async def test_ready_after_exactly_n_successes_and_unhealthy_after_failures(make, tmp_path: Path) -> None:
    """The test answers the health checks itself on the instance's port, so it counts them exactly."""
    status = {"code": 200, "hits": 0}

    async def health(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        status["hits"] += 1
        writer.write(b"HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi" % status["code"])
        await writer.drain()
        writer.close()

    health_config = HealthConfig(interval=0.02, successes=3, failures=2, timeout=15)
    inst, rec = make(tmp_path, "exec sleep 60", health=health_config)
    server = await asyncio.start_server(health, "127.0.0.1", inst.port)
    hits_at: list[tuple[InstanceState, int]] = []
    rec.hook = lambda: hits_at.append((inst.state, status["hits"]))
    try:
        await inst.start()
        assert await inst.wait_ready(15)
        assert hits_at == [(InstanceState.READY, 3)]

        status["code"], flipped = 503, status["hits"]
        await eventually(lambda: inst.state == InstanceState.UNHEALTHY, what="unhealthy")
        assert hits_at[-1] == (InstanceState.UNHEALTHY, flipped + 2)
        assert inst.last_health == "GET /healthz: 503 hi"

        status["code"], flipped = 200, status["hits"]
        await eventually(lambda: inst.state == InstanceState.READY, what="ready again")
        assert hits_at[-1] == (InstanceState.READY, flipped + 3)
    finally:
        server.close()


async def test_crash_after_requests_is_restarted(make, app_dir: Path) -> None:
    inst, rec = make(app_dir, DEMO, {"DEMO_CRASH_AFTER": "15"})  # health checks count as requests
    await inst.start()
    first_pid = inst.pid
    assert await inst.wait_ready(15)
    await eventually(lambda: inst.restarts >= 1 and inst.state == InstanceState.READY, what="restarted and ready")
    assert inst.pid != first_pid
    assert rec.states[:4] == [InstanceState.READY, InstanceState.CRASHED, InstanceState.STARTING, InstanceState.READY]
    assert "[conveyor] instance exited with code 3; restarting in 1s" in inst.logs
    assert any("DEMO_CRASH_AFTER=15" in line for line in inst.logs)  # stderr is kept too


async def test_killed_instance_is_restarted_on_the_same_port(make, app_dir: Path) -> None:
    inst, rec = make(app_dir, DEMO)
    await inst.start()
    assert await inst.wait_ready(15)
    first_pid = inst.pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    await eventually(lambda: inst.state == InstanceState.CRASHED, what="crashed")
    assert inst.restarts == 1
    await eventually(lambda: inst.state == InstanceState.READY, what="ready again")
    assert inst.pid != first_pid
    assert not pid_alive(first_pid)
    assert rec.states == [InstanceState.READY, InstanceState.CRASHED, InstanceState.STARTING, InstanceState.READY]
    assert inst.as_json()["restarts"] == 1
    status, _, body = await asyncio.to_thread(http_get, inst.port, "/version")
    assert (status, json.loads(body)["pid"]) == (200, inst.pid)
    assert f"[conveyor] instance exited with code {-signal.SIGKILL}; restarting in 1s" in inst.logs


async def test_failing_health_never_becomes_ready(make, app_dir: Path) -> None:
    inst, rec = make(app_dir, DEMO, {"DEMO_FAIL_HEALTH": "1"})
    await inst.start()
    assert not await inst.wait_ready(0.5)
    await eventually(lambda: inst.last_health, what="a health check")
    assert inst.state == InstanceState.STARTING
    assert rec.states == []
    report = inst.failure_report()
    assert report.startswith(f"instance web-v1-1 (port {inst.port}): last health check: GET /healthz: 503 ")
    assert '"status":"failing"' in report
    assert "FAIL_HEALTH" in report
    assert f"demo-app listening on 127.0.0.1:{inst.port} version=v1" in report  # the log tail


async def test_stop_lets_an_in_flight_request_finish_and_leaves_nothing(make, app_dir: Path) -> None:
    inst, rec = make(app_dir, DEMO, {"DEMO_SLOW_MS": "1000"})
    await inst.start()
    assert await inst.wait_ready(15)
    pid = inst.pid
    assert pid is not None
    slow = asyncio.create_task(asyncio.to_thread(http_get, inst.port, "/version"))

    def in_flight() -> int:
        _, _, body = http_get(inst.port, "/healthz")
        return int(json.loads(body)["in_flight"])

    deadline = time.monotonic() + 10
    while await asyncio.to_thread(in_flight) < 1:
        assert time.monotonic() < deadline, "the slow request never reached the app"
        await asyncio.sleep(0.01)

    await inst.stop(grace=10)
    status, headers, body = await slow
    assert status == 200
    assert json.loads(body)["version"] == "v1"
    assert headers["connection"] == "close"
    assert inst.state == InstanceState.STOPPED
    assert rec.states[-2:] == [InstanceState.STOPPING, InstanceState.STOPPED]
    assert not pid_alive(pid)
    assert not group_members(pid)
    assert not port_open(inst.port)
    assert "demo-app stopped" in inst.logs


async def test_stop_kills_a_group_that_ignores_sigterm(make, tmp_path: Path) -> None:
    inst, _ = make(tmp_path, "trap '' TERM; sleep 300 & sleep 300 & wait")
    await inst.start()
    pgid = inst.pid
    assert pgid is not None
    await eventually(lambda: len(group_members(pgid)) == 3, what="the shell and its two children")
    started = time.monotonic()
    await inst.stop(grace=0.3)
    assert time.monotonic() - started >= 0.3  # it waited the grace period for SIGTERM first
    assert inst.state == InstanceState.STOPPED
    assert not group_members(pgid)


def test_a_group_whose_processes_all_exited_is_not_alive_before_it_is_reaped() -> None:
    """An instance's app outlives its shell and is reaped by PID 1, which in a container may be
    late; stop() must not wait out its grace period for a zombie."""
    from conveyor.agent.procs import group_running as _group_alive

    leader = subprocess.Popen(["sleep", "100"], start_new_session=True)
    try:
        assert _group_alive(leader.pid)
        os.kill(leader.pid, signal.SIGKILL)  # a zombie until this process reaps it below

        def zombie() -> bool:
            return Path(f"/proc/{leader.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"

        deadline = time.monotonic() + 10
        while not zombie():
            assert time.monotonic() < deadline, "the killed process never became a zombie"
            time.sleep(0.01)
        os.killpg(leader.pid, 0)  # the signal still finds the group ...
        assert not _group_alive(leader.pid)  # ... but nothing in it runs
    finally:
        leader.kill()
        leader.wait()
    assert not _group_alive(leader.pid)
