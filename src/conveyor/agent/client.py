"""The server's side of the agent: find the agent of this HOME (start one in embedded mode if
none is running), and call its API."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from conveyor.domain.process_env import PROCESS_BASICS, allowed
from conveyor.errors import ConveyorError

START_TIMEOUT = 30.0
AGENT_SETTINGS = ("CONVEYOR_AGENT_", "CONVEYOR_ROUTER_")  # the settings the agent process reads


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


def find_agent(home: Path) -> AgentClient | None:
    """The running agent of ``home``, or None when there is none (never starts one)."""
    return _client(home.resolve() / "agent")


def agent_environment(home: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """What the agent starts with: process basics, its own settings (CONVEYOR_AGENT_* and
    CONVEYOR_ROUTER_*) and CONVEYOR_HOME; not the server's token, database URL, webhook secret or
    cloud keys."""
    own = {k: v for k, v in environ.items() if k.startswith(AGENT_SETTINGS)}
    extra = allowed(environ, ("PYTHONPATH",))  # how this Conveyor was found, when run from a checkout
    return {**allowed(environ, PROCESS_BASICS), **extra, **own, "CONVEYOR_HOME": str(home.resolve())}


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
        env = agent_environment(home, os.environ)
        with (agent_dir / "agent.log").open("ab") as log:
            proc = subprocess.Popen(
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
            if proc.poll() is not None:
                tail = (agent_dir / "agent.log").read_text(errors="replace").strip().splitlines()[-3:]
                raise ConveyorError(
                    f"the agent exited with code {proc.returncode} at start: {' '.join(tail)}",
                    fix=f"see {agent_dir / 'agent.log'}",
                )
            time.sleep(0.05)
    raise ConveyorError(f"the agent did not start within {START_TIMEOUT:.0f}s", fix=f"see {agent_dir / 'agent.log'}")
