"""Maintenance mode through the API and the CLI: every request gets 503 with Retry-After and a
short page until it is turned off; a command target refuses it with a clear reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from tests.e2e.harness import Server, free_port
from tests.e2e.local import local_config, make_web_repo, stop_agent


def test_maintenance_mode_on_and_off(tmp_path: Path) -> None:
    staging, production = free_port(), free_port()
    repo = make_web_repo(tmp_path / "web", local_config(staging, production))
    server = Server(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'c.db'}", poll_interval=0)
    server.start()
    try:
        server.ok("POST", "/services", json={"source": str(repo)})
        d = server.ok("POST", "/deployments", json={"environment": "staging", "ref": "main"})
        assert server.wait_finished(d["id"])["state"] == "succeeded"
        cli = [sys.executable, "-m", "conveyor", "maintenance", "staging"]
        on = subprocess.run([*cli, "on"], env=server.env(), capture_output=True, text=True, timeout=60)
        assert on.returncode == 0, on.stderr
        r = httpx.get(f"http://127.0.0.1:{staging}/")
        assert r.status_code == 503 and r.headers["retry-after"] == "120" and "maintenance" in r.text.lower()
        audit = server.ok("GET", "/audit")["entries"]
        assert audit[0]["action"] == "environment.maintenance" and audit[0]["details"] == {"on": True}
        off = subprocess.run([*cli, "off"], env=server.env(), capture_output=True, text=True, timeout=60)
        assert off.returncode == 0, off.stderr
        assert httpx.get(f"http://127.0.0.1:{staging}/healthz").status_code == 200
        bad = subprocess.run([*cli, "sideways"], env=server.env(), capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2
    finally:
        server.stop()
        stop_agent(server.home)


def test_maintenance_needs_a_local_target(tmp_path: Path) -> None:
    from tests.e2e.harness import make_service_repo

    repo = make_service_repo(tmp_path / "shop", tmp_path / "effects")
    server = Server(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'c.db'}", poll_interval=0)
    server.start()
    try:
        server.ok("POST", "/services", json={"source": str(repo)})
        r = server.api("POST", "/environments/staging/maintenance", json={"on": True})
        assert r.status_code == 400 and "command" in r.json()["message"]
    finally:
        server.stop()
