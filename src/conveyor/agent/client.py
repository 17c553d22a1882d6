"""The server's side of the agent: find the agent of this HOME (start one in embedded mode if
none is running), and call its API."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from conveyor.errors import ConveyorError

START_TIMEOUT = 30.0


class AgentClient:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ConveyorError(
                f"the agent at {self.url} did not answer: {exc}",
                fix="check HOME/agent/agent.log, or run `conveyor agent`",
            ) from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text[:500] or response.reason_phrase
            raise ConveyorError(f"the agent refused {method} {path}: {detail}")
        return response.json()

    def alive(self) -> bool:
        try:
            return self.http.get("/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


def _client(agent_dir: Path) -> AgentClient | None:
    try:
        info = json.loads((agent_dir / "agent.json").read_text())
        token = (agent_dir / "token").read_text().strip()
    except (FileNotFoundError, ValueError):
        return None
    client = AgentClient(info["url"], token)
    return client if client.alive() else None


def ensure_agent(home: Path) -> AgentClient:
    """The running agent of ``home``; started (detached, outliving the server) when there is none."""
    agent_dir = home.resolve() / "agent"
    found = _client(agent_dir)
    if found:
        return found
    agent_dir.mkdir(parents=True, exist_ok=True)
    with (agent_dir / "start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time
        found = _client(agent_dir)
        if found:
            return found
        (agent_dir / "agent.json").unlink(missing_ok=True)
        env = {**os.environ, "CONVEYOR_HOME": str(home.resolve())}
        with (agent_dir / "agent.log").open("ab") as log:
            subprocess.Popen(
                [sys.executable, "-m", "conveyor", "agent"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = _client(agent_dir)
            if found:
                return found
            time.sleep(0.05)
    raise ConveyorError(f"the agent did not start within {START_TIMEOUT:.0f}s", fix=f"see {agent_dir / 'agent.log'}")
