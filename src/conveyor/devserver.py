"""A Conveyor server run by other code: the demo, the benchmarks and the tests all start theirs here.

Two ways to run the same app on a real port:

- ``ServerProcess``: ``python -m conveyor server`` as a child process, exactly what an operator
  runs. It can be killed with SIGKILL and started again on the same data, which is what the crash
  and restart tests need.
- ``ServerThread``: the app of ``create_app`` under uvicorn in a thread of the calling process, with
  a clock the caller may pass in. It answers the same HTTP on a real port (CLI subprocesses can
  talk to it) without the cost of starting an interpreter, and a test can move its clock.

Both take their settings as the ``CONVEYOR_*`` variables ``server_env`` builds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, get_origin

import httpx

from conveyor import httpclient
from conveyor.domain.clock import Clock
from conveyor.settings import Settings

T = TypeVar("T")


_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's pick), never one this process handed out
    before: two calls in a row (staging's port, then production's) could otherwise get the same
    one, since nothing listens on the first until its environment starts."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port that was not handed out already")


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def make_token(
    database_url: str,
    user: str = "alice",
    roles: Sequence[str] = ("admin", "release_manager"),
    *,
    password: str | None = None,
    label: str | None = None,
) -> str:
    """Migrate the database, add ``user`` with ``roles`` and return an API token for them."""
    from conveyor.auth.users import add_user, create_token
    from conveyor.store.db import Database

    db = Database(database_url)
    db.migrate()
    now = datetime.now(UTC)
    try:
        with db.begin() as conn:
            account = add_user(conn, user, list(roles), now, password)
            return create_token(conn, account, now, label)
    finally:
        db.dispose()


def server_env(
    home: Path,
    database_url: str,
    port: int,
    *,
    poll_interval: float = 0.2,
    token: str = "",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The CONVEYOR_* settings of a server on ``port`` (and of a CLI that talks to it), on top of
    this process's environment without its own CONVEYOR_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(
        CONVEYOR_HOME=str(home),
        CONVEYOR_DATABASE_URL=database_url,
        CONVEYOR_POLL_INTERVAL=str(poll_interval),
        CONVEYOR_URL=f"http://127.0.0.1:{port}",
        CONVEYOR_PORT=str(port),
    )
    if token:
        env["CONVEYOR_TOKEN"] = token  # for a CLI run with this environment
    env.update(extra or {})
    return env


def _healthy(url: str) -> bool:
    try:
        return httpclient.get(url + "/api/v1/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class ServerProcess:
    """``python -m conveyor server`` in a child process, its output appended to ``log_path``;
    ``argv`` runs another command instead (one that serves the same app on ``port``)."""

    def __init__(self, port: int, env: Mapping[str, str], log_path: Path, argv: Sequence[str] | None = None) -> None:
        self.port, self.env, self.log_path = port, dict(env), log_path
        self.argv = list(argv or [sys.executable, "-m", "conveyor", "server", "--port", str(port)])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60) -> None:
        """Start it and return once it answers its health check; RuntimeError if it exits first."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log()}")
            return _healthy(self.url)

        try:
            wait_for(up, timeout, "the server to answer")
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n{self.log()}") from exc

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def wait(self) -> int:
        assert self.proc is not None
        return self.proc.wait()

    def log(self, tail: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """Settings from the CONVEYOR_* variables given here, not from this process's environment."""
    fields = {k.removeprefix("CONVEYOR_").lower(): v for k, v in env.items() if k.startswith("CONVEYOR_")}
    unknown = set(fields) - set(Settings.model_fields)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = dict(fields)
    for name, text in fields.items():  # complex settings come as JSON, as from the environment
        if get_origin(Settings.model_fields[name].annotation) in (dict, list):
            values[name] = json.loads(text)
    return Settings.model_validate(values)


class ServerThread:
    """The server's app under uvicorn in a thread of this process, on a real port.

    One at a time per process: the engine (DBOS) is process-wide. ``stop`` runs the app's shutdown
    (the engine stops, nothing in flight is lost: the next ``start`` resumes it, as after a restart).
    """

    def __init__(self, port: int, env: Mapping[str, str], clock: Clock | None = None) -> None:
        self.port, self.env, self.clock = port, dict(env), clock
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.runtime: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 60) -> None:
        import uvicorn

        from conveyor.app import create_app
        from conveyor.runtime import Runtime
        from conveyor.store.db import Database

        settings = settings_from_env(self.env)
        settings.port = self.port
        rt = Runtime(settings=settings, db=Database(settings.app_database_url))
        if self.clock is not None:
            rt.clock = self.clock
        self.runtime = rt
        config = uvicorn.Config(
            create_app(rt), host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=5
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run, name=f"conveyor-server-{self.port}", daemon=True)
        self._thread.start()

        def up() -> bool:
            if not self.running:
                raise RuntimeError("the in-process server stopped while starting (see the output above)")
            return bool(server.started) and _healthy(self.url)

        wait_for(up, timeout, "the in-process server to answer")

    def stop(self, timeout: float = 30) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"the in-process server on port {self.port} did not stop within {timeout}s")
        self._server = self._thread = None
