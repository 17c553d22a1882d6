"""App instances: one process per replica from the service's ``run`` command, in the release's
worktree, with an allow-listed environment (domain/process_env.py: the release's env, PORT and
CONVEYOR_INSTANCE, never the agent's own secrets), as the ``agent_run_as`` user when one is set,
and with its own process group. A crashed instance is restarted with backoff; each
keeps the tail of its stdout/stderr; each is health-checked and is *ready* after N consecutive
successes (and not ready again after ``failures`` consecutive failures)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from conveyor.agent.health import check_http
from conveyor.agent.procs import group_running
from conveyor.agent.run_as import RunAs
from conveyor.domain.process_env import instance_environment

LOG_LINES = 500
BACKOFF_MAX = 30.0


class InstanceState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    UNHEALTHY = "unhealthy"
    CRASHED = "crashed"  # exited; waiting to be restarted
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class HealthConfig:
    path: str = "/healthz"
    interval: float = 1.0
    successes: int = 2
    failures: int = 3
    timeout: float = 60.0  # how long a new instance may take to become ready


@dataclass(frozen=True)
class ReleaseSpec:
    version: str
    sha: str
    workdir: str
    command: str
    env: dict[str, str] = field(default_factory=dict)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Instance:
    def __init__(
        self,
        id: str,
        release: ReleaseSpec,
        health: HealthConfig,
        on_change: Callable[[], None],
        host: str = "127.0.0.1",
        run_as: RunAs | None = None,
    ) -> None:
        self.id, self.release, self.health, self.host = id, release, health, host
        self.run_as = run_as
        self.port = free_port(host)
        self.state = InstanceState.STARTING
        self.logs: deque[str] = deque(maxlen=LOG_LINES)
        self.lines_seen = 0  # every line ever kept, so a reader that polls can tell which are new
        self.restarts = 0
        self.last_health = ""
        self.started_at = 0.0
        self._ok_streak = 0
        self._fail_streak = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._on_change = on_change
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.release.version,
            "port": self.port,
            "pid": self.pid,
            "state": self.state.value,
            "restarts": self.restarts,
            "last_health": self.last_health,
        }

    def _set(self, state: InstanceState) -> None:
        if self.state != state:
            self.state = state
            self._on_change()

    async def start(self) -> None:
        await self._spawn()
        self._tasks = [asyncio.create_task(self._watch()), asyncio.create_task(self._check_health())]

    async def _spawn(self) -> None:
        home = self.run_as.home if self.run_as else None
        env = instance_environment(os.environ, self.release.env, self.port, self.id, home)
        user: dict[str, Any] = self.run_as.popen_args() if self.run_as else {}
        self._proc = await asyncio.create_subprocess_exec(
            "sh",
            "-c",
            self.release.command,
            cwd=self.release.workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            **user,
        )
        self.started_at = time.monotonic()
        self._ok_streak = self._fail_streak = 0
        self._set(InstanceState.STARTING)
        self._pump_task = asyncio.create_task(self._pump(self._proc))

    async def _pump(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            self.log(line.decode("utf-8", "replace").rstrip("\n"))

    def log(self, line: str) -> None:
        self.logs.append(line)
        self.lines_seen += 1

    def output(self, lines: int) -> dict[str, Any]:
        """The last ``lines`` lines of output, with the count of all lines so far."""
        tail = list(self.logs)[-lines:] if lines > 0 else []
        return {**self.as_json(), "lines_seen": self.lines_seen, "lines": tail}

    async def _watch(self) -> None:
        """Restart the process whenever it exits unless we are stopping it; back off 1, 2, 4 ... 30 s."""
        backoff = 1.0
        while True:
            assert self._proc is not None
            code = await self._exited(self._proc)
            if self._stopping:
                return
            with contextlib.suppress(ProcessLookupError):  # what the shell left behind goes too
                os.killpg(self._proc.pid, signal.SIGKILL)
            self.log(f"[conveyor] instance exited with code {code}; restarting in {backoff:.0f}s")
            self._set(InstanceState.CRASHED)
            self.restarts += 1
            await asyncio.sleep(backoff)
            if self._stopping:
                return
            ran_long = time.monotonic() - self.started_at > 60
            backoff = 1.0 if ran_long else min(backoff * 2, BACKOFF_MAX)
            await self._spawn()

    @staticmethod
    async def _exited(proc: asyncio.subprocess.Process) -> int:
        """The exit code, polled: ``proc.wait()`` on Python 3.11 also waits for the output pipe to
        close, which a child the shell left behind can keep open."""
        while proc.returncode is None:
            await asyncio.sleep(0.1)
        return proc.returncode

    async def _check_health(self) -> None:
        url = f"http://{self.host}:{self.port}{self.health.path}"
        while not self._stopping:
            if self.state in (InstanceState.STARTING, InstanceState.READY, InstanceState.UNHEALTHY):
                ok, detail = await check_http(url, timeout=min(5.0, max(self.health.interval, 1.0)))
                self.last_health = detail
                if ok:
                    self._ok_streak, self._fail_streak = self._ok_streak + 1, 0
                    if self._ok_streak >= self.health.successes and self.state != InstanceState.READY:
                        self._set(InstanceState.READY)
                else:
                    self._ok_streak, self._fail_streak = 0, self._fail_streak + 1
                    if self.state == InstanceState.READY and self._fail_streak >= self.health.failures:
                        self._set(InstanceState.UNHEALTHY)
            await asyncio.sleep(self.health.interval)

    async def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state == InstanceState.READY:
                return True
            await asyncio.sleep(0.02)
        return self.state == InstanceState.READY

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the instance's process group, SIGKILL it after ``grace`` seconds."""
        self._stopping = True
        self._set(InstanceState.STOPPING)
        for task in self._tasks:
            task.cancel()
        proc = self._proc
        if proc is not None:  # even if the shell has exited, what it started may not have
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while group_running(proc.pid) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):  # whatever is left after the grace period
                os.killpg(proc.pid, signal.SIGKILL)
            await self._exited(proc)
        self._set(InstanceState.STOPPED)

    def failure_report(self) -> str:
        tail = "\n".join(list(self.logs)[-15:])
        return f"instance {self.id} (port {self.port}): last health check: {self.last_health or 'none'}\n{tail}"
