"""The server's side of the agent, and the one place that knows how to find it and how it names
environments: find the agent of this HOME (start one in embedded mode if none is running), and call
its API with the models of agent/protocol.py."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from conveyor import httpclient
from conveyor.agent.protocol import (
    AgentHealth,
    EnvironmentConfig,
    EnvironmentInstances,
    EnvironmentState,
    InstanceOutput,
    MaintenanceBody,
    NumberedInstance,
    Operation,
    OperationBody,
    ReleaseWindow,
    SwitchBody,
)
from conveyor.domain.process_env import PROCESS_BASICS, allowed
from conveyor.errors import ConveyorError

A = TypeVar("A", bound=BaseModel)

START_TIMEOUT = 30.0
AGENT_SETTINGS = ("CONVEYOR_AGENT_", "CONVEYOR_ROUTER_")  # the settings the agent process reads


def environment_key(service: str, environment: str) -> str:
    """The agent's name for an environment of a service: ``shop.production``."""
    return f"{service}.{environment}"


class AgentClient:
    """The agent's API, typed with agent/protocol.py. ``call`` is the untyped escape hatch."""

    def __init__(self, url: str, token: str, pid: int | None = None) -> None:
        self.url, self.pid = url, pid  # pid: what HOME/agent/agent.json says the agent's is
        self.http = httpclient.client(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; AgentUnreachable when the agent does not answer at all."""
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise AgentUnreachable(
                f"the agent at {self.url} did not answer: {exc}",
                fix="check HOME/agent/agent.log, or run `conveyor agent`",
            ) from exc

    @staticmethod
    def _refused(method: str, path: str, response: httpx.Response) -> ConveyorError:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text[:500] or response.reason_phrase
        return ConveyorError(f"the agent refused {method} {path}: {detail}")

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.send(method, path, **kwargs)
        if response.status_code >= 400:
            raise self._refused(method, path, response)
        return response.json()

    def _answer(self, model: type[A], method: str, path: str, body: BaseModel | None = None) -> A:
        sent = body.model_dump(mode="json") if body is not None else None
        return model.model_validate(self.call(method, path, json=sent))

    def alive(self) -> bool:
        try:
            return self.http.get("/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def health(self) -> AgentHealth:
        return self._answer(AgentHealth, "GET", "/v1/health")

    def configure(self, key: str, config: EnvironmentConfig) -> EnvironmentState:
        """Make sure the environment exists with this router (idempotent)."""
        return self._answer(EnvironmentState, "PUT", f"/v1/environments/{key}", config)

    def state(self, key: str) -> EnvironmentState:
        return self._answer(EnvironmentState, "GET", f"/v1/environments/{key}")

    def operate(self, key: str, body: OperationBody) -> Operation:
        """Start a deploy operation, or find the one with the same id already under way."""
        return self._answer(Operation, "POST", f"/v1/environments/{key}/operations", body)

    def switch(self, key: str, body: SwitchBody) -> Operation | None:
        """A quick rollback to a warm release; None when that release is not warm (409)."""
        path = f"/v1/environments/{key}/switch"
        response = self.send("POST", path, json=body.model_dump(mode="json"))
        if response.status_code == 409:
            return None
        if response.status_code >= 400:
            raise self._refused("POST", path, response)
        return Operation.model_validate(response.json())

    def operation(self, key: str, op_id: str) -> Operation:
        return self._answer(Operation, "GET", f"/v1/environments/{key}/operations/{op_id}")

    def cancel(self, key: str, op_id: str) -> Operation:
        return self._answer(Operation, "POST", f"/v1/environments/{key}/operations/{op_id}/cancel")

    def maintenance(self, key: str, body: MaintenanceBody) -> EnvironmentState:
        return self._answer(EnvironmentState, "POST", f"/v1/environments/{key}/maintenance", body)

    def output(self, key: str, lines: int) -> list[InstanceOutput]:
        """Each instance with its last ``lines`` lines; none when the agent has not run ``key``
        since it started."""
        path = f"/v1/environments/{key}/output"
        response = self.send("GET", path, params={"lines": lines})
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            raise self._refused("GET", path, response)
        return _OUTPUT.validate_python(response.json())

    def window(self, key: str, release: str, since: float, until: float, timeout: float = 30.0) -> ReleaseWindow | None:
        """A release's counts over the seconds (epoch) starting in [since, until); None when the
        agent has not run ``key`` since it started."""
        path = f"/v1/environments/{key}/windows"
        params = {"release": release, "since": repr(since), "until": repr(until)}
        response = self.send("GET", path, params=params, timeout=timeout)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._refused("GET", path, response)
        return ReleaseWindow.model_validate(response.json())

    def close(self) -> None:
        self.http.close()


class AgentUnreachable(ConveyorError):
    """The agent did not answer at all (not running, or gone since its files were written)."""


_OUTPUT = TypeAdapter(list[InstanceOutput])


@dataclass(frozen=True)
class _Found:
    files: tuple[tuple[int, int, int], ...]  # (inode, mtime, size) of agent.json and token
    client: AgentClient


_FOUND: dict[Path, _Found] = {}
_FOUND_LOCK = threading.Lock()


def _files(agent_dir: Path) -> tuple[tuple[int, int, int], ...] | None:
    try:
        stats = [(agent_dir / name).stat() for name in ("agent.json", "token")]
    except FileNotFoundError:
        return None
    return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)


def _read(agent_dir: Path) -> AgentClient | None:
    try:
        info = json.loads((agent_dir / "agent.json").read_text())
        token = (agent_dir / "token").read_text().strip()
        pid = info.get("pid")
        return AgentClient(str(info["url"]), token, pid if isinstance(pid, int) else None)
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def _known(agent_dir: Path) -> AgentClient | None:
    """The client for the agent ``agent_dir`` describes, made once per agent start: the files are
    read again only when they change (a new agent writes them anew). Not probed: a caller that
    finds it gone calls ``forget``."""
    files = _files(agent_dir)
    with _FOUND_LOCK:
        cached = _FOUND.get(agent_dir)
        if cached is not None and cached.files == files:
            return cached.client
        if cached is not None:
            del _FOUND[agent_dir]
            cached.client.close()
        client = _read(agent_dir) if files is not None else None
        if client is not None and files is not None:
            _FOUND[agent_dir] = _Found(files, client)
        return client


def forget(home: Path) -> None:
    """Drop the cached client of ``home``'s agent (it did not answer)."""
    with _FOUND_LOCK:
        cached = _FOUND.pop(home.resolve() / "agent", None)
    if cached is not None:
        cached.client.close()


def _client(agent_dir: Path) -> AgentClient | None:
    client = _known(agent_dir)
    return client if client is not None and client.alive() else None


def find_agent(home: Path) -> AgentClient | None:
    """The running agent of ``home``, or None when there is none (never starts one)."""
    return _client(home.resolve() / "agent")


def environment_state(home: Path, service: str, environment: str, timeout: float = 2.0) -> EnvironmentState | None:
    """The agent's state of an environment; None when no agent runs or it does not know the
    environment (yet). Never starts an agent, and waits at most ``timeout`` seconds."""
    agent = _known(home.resolve() / "agent")
    if agent is None:
        return None
    try:
        response = agent.send("GET", f"/v1/environments/{environment_key(service, environment)}", timeout=timeout)
    except AgentUnreachable:
        forget(home)
        return None
    if response.status_code != 200:
        return None
    try:
        return EnvironmentState.model_validate(response.json())
    except ValueError:  # not the protocol's answer: an agent of another version, or not an agent
        return None


def release_window(
    home: Path, service: str, environment: str, release: str, since: float, until: float, timeout: float = 5.0
) -> ReleaseWindow | None:
    """A release's counts over the seconds (epoch) starting in [since, until), from ``home``'s
    agent; None when no agent runs or it does not know the environment. Never starts an agent."""
    agent = _known(home.resolve() / "agent")
    if agent is None:
        return None
    try:
        return agent.window(environment_key(service, environment), release, since, until, timeout)
    except AgentUnreachable:
        forget(home)
        return None
    except ValueError:  # not the protocol's answer: an agent of another version, or not an agent
        return None


def instance_output(home: Path, service: str, environment: str, lines: int) -> EnvironmentInstances:
    """The instances of an environment with their last ``lines`` lines of output, numbered from 1
    (the serving release's first, then the warm one's). Never starts an agent: reading must not
    change anything. No health probe: the read itself tells whether the agent is there."""
    agent = _known(home.resolve() / "agent")
    if agent is None:
        return EnvironmentInstances(agent=False, instances=[])
    try:
        found = agent.output(environment_key(service, environment), lines)
    except AgentUnreachable:  # it stopped since it wrote its files
        forget(home)
        return EnvironmentInstances(agent=False, instances=[])
    numbered = [NumberedInstance(index=n, **i.model_dump()) for n, i in enumerate(found, start=1)]
    return EnvironmentInstances(agent=True, instances=numbered)


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
