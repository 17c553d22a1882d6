"""Helpers for local-target tests: a service repository made of the demo app, the agent's API,
and a steady client that records every response it gets through an environment's router."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import Pacer
from tests.e2e.harness import commit, git

from conveyor.agent.procs import exited

DEMO_APP = Path(__file__).resolve().parents[2] / "examples" / "demo-app"


def local_config(
    staging_port: int,
    production_port: int,
    quick_rollback: str = "15m",
    strategy: str = "rolling",
    router: str = "builtin",
) -> str:
    return textwrap.dedent(
        f"""\
        service: web
        run: python3 app.py --port $PORT
        health: {{path: /healthz, interval: 100ms, successes: 2, timeout: 10s}}
        environments:
          staging:
            target: {{kind: local, port: {staging_port}, replicas: 2, router: {router}}}
            rollout: {{strategy: {strategy}, max_surge: 1}}
            quick_rollback: {quick_rollback}
          production:
            target: {{kind: local, port: {production_port}, replicas: 2, router: {router}}}
            rollout: {{strategy: blue_green}}
            quick_rollback: {quick_rollback}
            tag: {{bump: minor}}
        """
    )


def make_web_repo(path: Path, config: str) -> Path:
    shutil.copytree(DEMO_APP, path, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    (path / "conveyor.yml").write_text(config)
    git(path, "init", "-q", "-b", "main")
    commit(path, {}, "web v1")
    return path


def agent_api(home: Path) -> httpx.Client:
    info = json.loads((home / "agent" / "agent.json").read_text())
    token = (home / "agent" / "token").read_text().strip()
    return httpx.Client(base_url=info["url"], headers={"Authorization": f"Bearer {token}"}, timeout=10)


def stop_agent(home: Path) -> None:
    path = home / "agent" / "agent.json"
    if path.exists():
        pid = json.loads(path.read_text())["pid"]
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if _gone(pid):
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        _gone(pid)


def _gone(pid: int) -> bool:
    """Whether the process has exited; reaps it when it is this process's child (an in-process
    server started the agent), which would otherwise linger as a zombie."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass  # not our child: its parent reaps it
    return exited(pid)  # a zombie too: its parent, the server, is gone, and PID 1 may reap it late


@dataclass
class Load:
    """A client in a thread sending GET /version over keep-alive, ``rate`` requests a second."""

    port: int
    rate: float = 400.0
    results: list[tuple[float, int, str]] = field(default_factory=list)  # (time, status, version)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
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
                version = json.loads(body)["version"] if response.status == 200 else ""
                self.results.append((time.monotonic(), response.status, version))
                if response.status != 200:
                    self.failures.append(f"{response.status} {body[:100]!r}")
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def stop(self) -> Load:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=15)
        return self

    def versions_after(self, t: float) -> set[str]:
        return {v for when, _status, v in self.results if when > t}


def get_version(port: int) -> Any:
    return httpx.get(f"http://127.0.0.1:{port}/version", timeout=5).json()["version"]
