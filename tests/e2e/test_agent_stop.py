"""`conveyor agent stop`: the real command against a real agent that runs real app instances;
afterwards the agent, every instance and every router are gone, and a second stop has nothing to do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.conftest import wait_until
from tests.e2e.harness import Server, free_port
from tests.e2e.local import agent_api, local_config, make_web_repo, stop_agent

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    return True


@SQLITE_ONLY
def test_agent_stop_stops_every_instance_and_router_then_the_agent(tmp_path: Path, database_url: str) -> None:
    staging, production = free_port(), free_port()
    repo = make_web_repo(tmp_path / "web", local_config(staging, production))
    server = Server(home=tmp_path / "home", database_url=database_url, poll_interval=0)
    server.start()
    try:
        server.ok("POST", "/services", json={"source": str(repo)})
        for env in ("staging", "production"):
            d = server.ok("POST", "/deployments", json={"environment": env, "ref": "main"})
            assert server.wait_finished(d["id"], timeout=90)["state"] == "succeeded"
        agent_pid = json.loads((server.home / "agent" / "agent.json").read_text())["pid"]
        with agent_api(server.home) as api:
            envs = [api.get(f"/v1/environments/{key}").json() for key in api.get("/v1/health").json()["environments"]]
        instances = [i["pid"] for e in envs for i in e["active"]["instances"]]
        assert len(instances) == 4 and all(alive(pid) for pid in instances), envs
        assert answers(staging) and answers(production)

        stopped = subprocess.run(
            [sys.executable, "-m", "conveyor", "agent", "stop", "--json"],
            env=server.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert stopped.returncode == 0, stopped.stderr
        report = json.loads(stopped.stdout)
        assert report["stopped"] is True and report["pid"] == agent_pid
        assert len(report["environments"]) == 2
        # the command returns once the agent has exited; by then it has stopped its instances and routers
        assert not alive(agent_pid)
        assert not any(alive(pid) for pid in instances)
        assert not answers(staging) and not answers(production)
        assert not (server.home / "agent" / "agent.json").exists()

        again = subprocess.run(
            [sys.executable, "-m", "conveyor", "agent", "stop"], env=server.env(), capture_output=True, text=True
        )
        assert again.returncode == 0 and "nothing to stop" in again.stdout, again.stdout + again.stderr
    finally:
        server.stop()
        stop_agent(server.home)
    wait_until(lambda: not answers(staging), timeout=30, what="the staging router to be gone")
