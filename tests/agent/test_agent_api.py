"""`python -m conveyor agent` as a real process: its files, its token, its API (environments,
operations, maintenance, logs, /metrics), and a SIGTERM that stops everything it started."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from conveyor.devserver import free_port

DEMO_APP = Path(__file__).resolve().parents[2] / "examples" / "demo-app" / "app.py"
DEMO = f"exec {shlex.quote(sys.executable)} app.py"  # PORT comes from the environment
FAST_HEALTH = {"path": "/healthz", "interval": 0.05, "successes": 2, "timeout": 15}
T = TypeVar("T")


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


def wait_until(check: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
        time.sleep(0.02)


@dataclass
class Agent:
    proc: subprocess.Popen[bytes]
    home: Path
    url: str
    token: str
    log_path: Path

    def api(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token if token is None else token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_agent(home: Path) -> Agent:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "DEMO_"))}
    env["CONVEYOR_HOME"] = str(home)
    log_path = home.parent / f"{home.name}-agent.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "agent"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home.parent
        )
    info_path = home / "agent" / "agent.json"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the agent exited with {proc.returncode}:\n{log_path.read_text()}")
        return info_path.exists()

    wait_until(ready, what="agent.json")
    info = json.loads(info_path.read_text())
    token = (home / "agent" / "token").read_text().strip()
    return Agent(proc, home, info["url"], token, log_path)


def stop_agent(agent: Agent) -> None:
    if agent.proc.poll() is None:
        agent.proc.send_signal(signal.SIGTERM)
        try:
            agent.proc.wait(30)
        except subprocess.TimeoutExpired:
            agent.proc.kill()
            agent.proc.wait()


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo-app")
    shutil.copy(DEMO_APP, path / "app.py")
    return path


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    running = start_agent(tmp_path_factory.mktemp("shared") / "home")
    yield running
    stop_agent(running)


@pytest.fixture
def api(agent: Agent) -> Iterator[httpx.Client]:
    with agent.api() as client:
        yield client


def operation(op_id: str, version: str, app_dir: Path, replicas: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "id": op_id,
        "release": {
            "version": version,
            "sha": f"sha-{version}",
            "workdir": str(app_dir),
            "command": DEMO,
            "env": {"CONVEYOR_VERSION": version},
        },
        "replicas": replicas,
        "health": FAST_HEALTH,
        **extra,
    }


def wait_for_operation(api: httpx.Client, env: str, op_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        doc: dict[str, Any] = api.get(f"/v1/environments/{env}/operations/{op_id}").json()
        return doc if doc["state"] != "running" else None

    return wait_until(finished, timeout=30, what=f"operation {op_id}")


def get(port: int, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)


# --- the whole life of an agent ------------------------------------------------------------------


def test_agent_lifecycle(tmp_path: Path, app_dir: Path) -> None:
    home = tmp_path / "home"
    agent = start_agent(home)
    try:
        info = json.loads((home / "agent" / "agent.json").read_text())
        assert info["pid"] == agent.proc.pid
        assert info["url"].startswith("http://127.0.0.1:")
        token_mode = stat.S_IMODE((home / "agent" / "token").stat().st_mode)
        assert token_mode == 0o600, oct(token_mode)
        assert len(agent.token) >= 32
        assert "listening on " + agent.url in agent.log()

        with agent.api() as api:
            assert api.get("/v1/health").json() == {"status": "ok", "pid": agent.proc.pid, "environments": []}

            router_port = free_port()
            configured = api.put("/v1/environments/web", json={"port": router_port})
            assert configured.status_code == 200, configured.text
            assert configured.json()["port"] == router_port
            assert configured.json()["active"] is None
            assert port_open(router_port)

            body = operation("op-1", "v1", app_dir, replicas=2)
            started = api.post("/v1/environments/web/operations", json=body)
            assert started.status_code == 202, started.text
            assert started.json()["state"] == "running"
            assert started.json()["version"] == "v1"
            again = api.post("/v1/environments/web/operations", json=operation("op-1", "v9", app_dir))
            assert again.json()["version"] == "v1"  # the same operation, not a second deploy
            done = wait_for_operation(api, "web", "op-1")
            assert done["state"] == "succeeded", done
            assert done["message"] == "v1 serving on 2 instance(s)"

            state = api.get("/v1/environments/web").json()
            assert state["active"]["version"] == "v1"
            instances = state["active"]["instances"]
            assert len(state["rotation"]) == 2
            assert {i["state"] for i in instances} == {"ready"}

            for _ in range(10):
                resp = get(router_port, "/version")
                assert resp.status_code == 200
                assert resp.json()["version"] == "v1"
            assert get(router_port, "/missing").status_code == 404

            metrics = api.get("/metrics")
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain")
            lines = metrics.text.splitlines()
            assert 'conveyor_router_requests_total{environment="web",release="v1"} 11' in lines
            assert 'conveyor_router_5xx_total{environment="web",release="v1"} 0' in lines
            assert 'conveyor_router_failed_total{environment="web",release="v1"} 0' in lines
            histogram = "conveyor_router_request_duration_seconds"
            assert histogram + '_bucket{environment="web",release="v1",le="+Inf"} 11' in lines
            assert histogram + '_count{environment="web",release="v1"} 11' in lines

            logs = api.get("/v1/environments/web/logs").json()
            assert sorted(logs) == sorted(i["id"] for i in instances)
            assert all(any("demo-app listening" in line for line in tail) for tail in logs.values())

            on = api.post("/v1/environments/web/maintenance", json={"on": True, "retry_after": 45})
            assert on.json()["maintenance"] is True
            down = get(router_port, "/")
            assert (down.status_code, down.headers["retry-after"]) == (503, "45")
            assert "maintenance" in down.text
            api.post("/v1/environments/web/maintenance", json={"on": False})
            assert get(router_port, "/version").status_code == 200

            pids = [i["pid"] for i in instances]
            ports = [i["port"] for i in instances]
            assert all(map(pid_alive, pids))
    finally:
        stop_agent(agent)

    assert agent.proc.returncode == 0, agent.log()
    assert not (home / "agent" / "agent.json").exists()
    assert (home / "agent" / "token").exists()  # the token outlives the process
    assert not port_open(router_port)
    for pid, port in zip(pids, ports, strict=True):
        assert not pid_alive(pid), f"instance {pid} outlived the agent"
        assert not port_open(port)


# --- the API's refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/health"),
        ("GET", "/v1/environments"),
        ("PUT", "/v1/environments/x"),
        ("POST", "/v1/environments/x/operations"),
        ("GET", "/metrics"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer wrong-token", "Basic xyz"])
def test_requests_without_the_token_get_401(agent: Agent, method: str, path: str, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    resp = httpx.request(method, agent.url + path, headers=headers, json={"port": 1}, timeout=10)
    assert resp.status_code == 401
    assert "agent token" in resp.json()["detail"]


def test_unknown_environment_and_operation_are_404(api: httpx.Client) -> None:
    resp = api.get("/v1/environments/nowhere")
    assert resp.status_code == 404
    assert "PUT /v1/environments/nowhere first" in resp.json()["detail"]
    assert api.post("/v1/environments/nowhere/operations", json=operation("x", "v1", Path("/"))).status_code == 404
    api.put("/v1/environments/known", json={"port": free_port()}).raise_for_status()
    assert api.get("/v1/environments/known/operations/none").status_code == 404
    assert api.post("/v1/environments/known/operations/none/cancel").status_code == 404
    assert api.delete("/v1/environments/known").json() == {"removed": "known"}
    assert api.get("/v1/environments/known").status_code == 404


def test_invalid_bodies_are_422(api: httpx.Client, app_dir: Path) -> None:
    api.put("/v1/environments/checks", json={"port": free_port()}).raise_for_status()
    assert api.put("/v1/environments/checks", json={"port": 70000}).status_code == 422
    for bad in (
        {**operation("b1", "v1", app_dir), "strategy": "yolo"},
        {**operation("b2", "v1", app_dir), "replicas": 0},
        {**operation("b3", "v1", app_dir), "id": ""},
        {**operation("b4", "v1", app_dir), "health": {"interval": 0}},
    ):
        assert api.post("/v1/environments/checks/operations", json=bad).status_code == 422, bad
    assert api.get("/v1/environments/checks").json()["active"] is None


def test_failed_deploy_is_reported_through_the_api(api: httpx.Client, app_dir: Path) -> None:
    api.put("/v1/environments/failing", json={"port": free_port()}).raise_for_status()
    body = operation("f1", "v1", app_dir, health={**FAST_HEALTH, "timeout": 1})
    body["release"]["env"]["DEMO_FAIL_HEALTH"] = "1"
    assert api.post("/v1/environments/failing/operations", json=body).status_code == 202
    done = wait_for_operation(api, "failing", "f1")
    assert done["state"] == "failed"
    assert "did not become healthy" in done["message"]
    assert done["log"][-1].split(" ", 1)[1].startswith("failed: v1 did not become healthy")
    state = api.get("/v1/environments/failing").json()
    assert state["active"] is None and state["rotation"] == []


def test_unknown_router_kind_is_a_client_error(api: httpx.Client) -> None:
    resp = api.put("/v1/environments/odd", json={"port": free_port(), "router": "nginx"})
    assert resp.status_code in (400, 422)
    assert "builtin" in resp.json()["detail"]


def test_moving_to_a_taken_port_keeps_the_old_router(api: httpx.Client) -> None:
    old_port = free_port()
    api.put("/v1/environments/moving", json={"port": old_port}).raise_for_status()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        resp = api.put("/v1/environments/moving", json={"port": taken.getsockname()[1]})
    assert port_open(old_port), "the environment lost its listener"
    assert 400 <= resp.status_code < 500


def test_moving_to_a_new_port_keeps_maintenance_mode(api: httpx.Client) -> None:
    api.put("/v1/environments/upkeep", json={"port": free_port()}).raise_for_status()
    api.post("/v1/environments/upkeep/maintenance", json={"on": True, "retry_after": 60}).raise_for_status()
    new_port = free_port()
    moved = api.put("/v1/environments/upkeep", json={"port": new_port}).json()
    assert moved["maintenance"] is True
    resp = get(new_port, "/")
    assert resp.status_code == 503
    assert resp.headers.get("retry-after") == "60", resp.text
