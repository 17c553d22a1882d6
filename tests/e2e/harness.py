"""End-to-end tests: git repositories of a service, a Conveyor server on a real port (in this
process, or a subprocess killable with SIGKILL and restartable on the same data), and an API client."""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import wait_until

from conveyor.devserver import ServerProcess, ServerThread, free_port, make_token, server_env
from conveyor.domain.clock import Clock

FINISHED = {"succeeded", "failed", "rolled_back", "cancelled"}


def server_process(request: pytest.FixtureRequest) -> bool:
    """A test marked ``server_process`` gets a child-process server: it SIGKILLs it."""
    return request.node.get_closest_marker("server_process") is not None


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
    out = subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        if name.endswith(".sh"):
            path.chmod(0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


# A command-target service whose scripts record every effect, one line each, in EFFECTS.
# A step waits while a file named hold-STEP exists in EFFECTS, so a test can kill the server
# in the middle of exactly that step.
SCRIPTS = {
    "scripts/step.sh": textwrap.dedent(
        """\
        #!/bin/sh
        # usage: step.sh NAME -- record start, wait while hold-NAME exists, record done
        echo "$1 start $CONVEYOR_ENV $CONVEYOR_VERSION" >> "$EFFECTS/effects.log"
        while [ -f "$EFFECTS/hold-$1" ]; do sleep 0.05; done
        if [ -f "$EFFECTS/fail-$1" ]; then echo "$1 failing on purpose"; exit 7; fi
        echo "$1 done $CONVEYOR_ENV $CONVEYOR_VERSION" >> "$EFFECTS/effects.log"
        echo "$1 ok"
        """
    ),
    "scripts/deploy.sh": textwrap.dedent(
        """\
        #!/bin/sh
        "$CONVEYOR_WORKDIR/scripts/step.sh" rollout || exit $?
        echo "$CONVEYOR_VERSION $CONVEYOR_SHA" > "$EFFECTS/serving-$CONVEYOR_ENV"
        """
    ),
    "scripts/rollback.sh": textwrap.dedent(
        """\
        #!/bin/sh
        echo "rollback $CONVEYOR_ENV $CONVEYOR_VERSION from $CONVEYOR_PREVIOUS_VERSION" >> "$EFFECTS/effects.log"
        echo "$CONVEYOR_VERSION $CONVEYOR_SHA" > "$EFFECTS/serving-$CONVEYOR_ENV"
        """
    ),
    "app.txt": "version one\n",
}


def service_config(effects: Path, name: str = "shop", extra: str = "") -> str:
    env_block = f"env: {{EFFECTS: '{effects}'}}"
    target = "{kind: command, deploy: ./scripts/deploy.sh, rollback: ./scripts/rollback.sh}"
    return (
        textwrap.dedent(
            f"""\
        service: {name}
        build: ./scripts/step.sh prepare
        {env_block}
        environments:
          development:
            branch: develop
            auto_deploy: true
            target: {target}
          staging:
            branch: main
            auto_deploy: true
            target: {target}
            smoke: ./scripts/step.sh smoke
          production:
            target: {target}
            migrate: ./scripts/step.sh migrate
            smoke: ./scripts/step.sh smoke
            tag: {{bump: minor}}
        """
        )
        + extra
    )


def make_service_repo(path: Path, effects: Path, name: str = "shop") -> Path:
    path.mkdir(parents=True)
    effects.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    commit(path, {**SCRIPTS, "conveyor.yml": service_config(effects, name)}, "initial")
    git(path, "branch", "develop")
    return path


def effects(effects_dir: Path) -> list[str]:
    log = effects_dir / "effects.log"
    return log.read_text().splitlines() if log.exists() else []


@dataclass
class Server:
    """A Conveyor server for one test, on a real port (conveyor.devserver). By default the app runs
    in this process (``ServerThread``, with ``clock`` if given); ``process=True`` runs ``conveyor
    server`` as a child process instead, for the tests that SIGKILL it."""

    home: Path
    database_url: str
    port: int = field(default_factory=free_port)
    # followed branches are polled every second (5 s in production): at 0.2 s each running test
    # server spent about 4% of a core on git, on a suite bound by CPU
    poll_interval: float = 1.0
    webhook_secret: str | None = None
    process: bool = False
    clock: Clock | None = None
    token: str = ""
    runner: ServerProcess | ServerThread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.runner.proc if isinstance(self.runner, ServerProcess) else None

    def env(self) -> dict[str, str]:
        extra = {"CONVEYOR_SOURCE_LOCAL_ROOTS": str(self.home.parent)}  # tests register checkouts made next to HOME
        if self.webhook_secret:
            extra["CONVEYOR_GITHUB_WEBHOOK_SECRET"] = self.webhook_secret
        return server_env(
            self.home, self.database_url, self.port, poll_interval=self.poll_interval, token=self.token, extra=extra
        )

    def make_admin_token(self) -> str:
        self.token = make_token(self.database_url, "alice", ["admin", "release_manager"])
        return self.token

    def start(self) -> Server:
        if not self.token:
            self.make_admin_token()
        self.home.mkdir(parents=True, exist_ok=True)
        if self.process:
            self.runner = ServerProcess(self.port, self.env(), self.home / "server.log")
        else:
            self.runner = ServerThread(self.port, self.env(), self.clock)
        try:
            self.runner.start()
        except RuntimeError as exc:
            raise AssertionError(str(exc)) from exc
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (a child process only)."""
        assert isinstance(self.runner, ServerProcess), "kill() needs Server(process=True)"
        self.runner.kill()

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()

    def log(self) -> str:
        return self.runner.log() if isinstance(self.runner, ServerProcess) else "(in-process server: see the output)"

    # --- API -------------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.url + "/api/v1" + path, headers=headers, timeout=30, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.api(method, path, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def deployment(self, deployment_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.ok("GET", f"/deployments/{deployment_id}")
        return result

    def wait_finished(self, deployment_id: str, timeout: float = 60) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            d = self.deployment(deployment_id)
            return d if d["state"] in FINISHED else None

        try:
            return wait_until(done, timeout=timeout, what=f"deployment {deployment_id} to finish")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nserver log:\n{self.log()}") from exc

    def deployments(self, environment: str | None = None) -> list[dict[str, Any]]:
        params = {"environment": environment} if environment else {}
        result: list[dict[str, Any]] = self.ok("GET", "/deployments", params=params)
        return result


def wait_step_started(effects_dir: Path, line: str, timeout: float = 30) -> None:
    wait_until(
        lambda: any(e.startswith(line) for e in effects(effects_dir)),
        timeout=timeout,
        what=f"effect {line!r}",
    )


def now_ms() -> float:
    return time.monotonic() * 1000
