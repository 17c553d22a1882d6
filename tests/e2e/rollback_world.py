"""A service whose build the app needs at runtime, for rollback and release tests.

The build writes ``built.txt`` (``built <VERSION file> <commit>``) into the release's worktree and
the app serves that file at ``/``: a release that was never built answers 500 there, while its
``/healthz`` passes regardless, like a real app whose health check is fine while every page fails.

Every step can be held or failed from the test through files in CONTROL (the harness's pattern):
``hold-STEP`` / ``fail-STEP`` for prepare, migrate and smoke; ``unhealthy-SHA`` keeps the instances
of one commit from passing their health checks (holds, then fails, the rollout);
``fail-smoke-on`` holds a build content, and the smoke fails on the release that built it.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import Pacer, wait_until
from tests.e2e.harness import FINISHED, Server, commit, free_port, git
from tests.e2e.local import agent_api, stop_agent

APP = textwrap.dedent(
    '''\
    """The test site: serves built.txt (written by the build) at /, 500 when it is missing."""
    import os, signal, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    HERE = Path(__file__).resolve().parent
    CONTROL = Path(os.environ["CONTROL"])
    SHA = os.environ.get("CONVEYOR_SHA", "")
    busy = [0]
    lock = threading.Lock()


    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            with lock:
                busy[0] += 1
            try:
                if self.path == "/healthz":
                    bad = (CONTROL / f"unhealthy-{SHA}").exists()
                    self.reply(503 if bad else 200, b"unhealthy on purpose\\n" if bad else b"ok\\n")
                elif self.path == "/":
                    try:
                        self.reply(200, (HERE / "built.txt").read_bytes())
                    except FileNotFoundError:
                        self.reply(500, f"built.txt is missing in {HERE}: this release was never built\\n".encode())
                else:
                    self.reply(404, b"not found\\n")
            finally:
                with lock:
                    busy[0] -= 1

        def reply(self, status, body):
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass


    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])), Handler)


    def graceful(_signum, _frame):  # like gunicorn: stop accepting, finish what is in flight
        def drain():
            server.shutdown()
            deadline = time.monotonic() + 10
            while busy[0] and time.monotonic() < deadline:
                time.sleep(0.02)
            os._exit(0)

        threading.Thread(target=drain).start()


    signal.signal(signal.SIGTERM, graceful)
    server.serve_forever()
    time.sleep(30)  # drain() exits the process
    '''
)

STEP = textwrap.dedent(
    """\
    #!/bin/sh
    # usage: step.sh NAME -- wait while CONTROL/hold-NAME exists, fail if CONTROL/fail-NAME exists
    echo "$1 start $(git rev-parse HEAD 2>/dev/null)" >> "$CONTROL/effects.log"
    while [ -f "$CONTROL/hold-$1" ]; do sleep 0.05; done
    if [ -f "$CONTROL/fail-$1" ]; then echo "$1: failing on purpose"; exit 7; fi
    echo "$1 done $(git rev-parse HEAD 2>/dev/null)" >> "$CONTROL/effects.log"
    """
)

BUILD = textwrap.dedent(
    """\
    #!/bin/sh
    # the build: the app serves built.txt at /, so a release that was never built answers 500 there
    ./scripts/step.sh prepare || exit $?
    echo "built $(cat VERSION) $(git rev-parse HEAD)" > built.txt
    echo "wrote built.txt: $(cat built.txt)"
    """
)

SMOKE = textwrap.dedent(
    """\
    #!/bin/sh
    # smoke: runs in the release's worktree and checks that the environment serves this build
    ./scripts/step.sh smoke || exit $?
    test -f built.txt || { echo "smoke: no built.txt in $PWD"; exit 1; }
    page=$(curl -fsS --max-time 10 "$CONVEYOR_URL/") || { echo "smoke: GET $CONVEYOR_URL/ failed"; exit 1; }
    if [ "$page" != "$(cat built.txt)" ]; then
      echo "smoke: $CONVEYOR_URL/ serves '$page', expected '$(cat built.txt)'"; exit 1
    fi
    if [ -f "$CONTROL/fail-smoke-on" ] && grep -qxF "$(cat "$CONTROL/fail-smoke-on")" built.txt; then
      echo "smoke: failing on purpose for '$page'"; exit 1
    fi
    echo "smoke ok: $page"
    """
)


def site_config(
    control: Path,
    production_port: int,
    *,
    staging_port: int | None = None,
    quick_rollback: str = "15m",
    smoke: bool = True,
    migrate: bool = True,
    health_timeout: str = "10s",
) -> str:
    lines = [
        "service: site",
        "build: ./scripts/build.sh",
        "run: python3 app.py --port $PORT",
        f"health: {{path: /healthz, interval: 100ms, successes: 2, timeout: {health_timeout}}}",
        f"env: {{CONTROL: '{control}'}}",
        "environments:",
    ]
    if staging_port is not None:
        lines += ["  staging:", f"    target: {{kind: local, port: {staging_port}, replicas: 2}}"]
    lines += [
        "  production:",
        f"    target: {{kind: local, port: {production_port}, replicas: 2}}",
        "    rollout: {strategy: rolling, max_surge: 1}",
        f"    quick_rollback: {quick_rollback}",
        "    tag: {bump: minor}",
    ]
    if migrate:
        lines.append("    migrate: ./scripts/step.sh migrate")
    if smoke:
        lines.append("    smoke: ./scripts/smoke.sh")
    return "\n".join(lines) + "\n"


def make_site_repo(path: Path, config: str) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    files = {
        "app.py": APP,
        "scripts/step.sh": STEP,
        "scripts/build.sh": BUILD,
        "scripts/smoke.sh": SMOKE,
        "VERSION": "one\n",
        ".gitignore": "built.txt\n",
        "conveyor.yml": config,
    }
    commit(path, files, "site one")
    return path


@dataclass
class PageLoad:
    """A client in a thread sending GET / through the router over keep-alive, ``rate`` requests a
    second, until stopped or the deadline; every answer is kept as (time, status, body)."""

    port: int
    deadline_seconds: float = 180.0
    rate: float = 400.0  # requests a second
    results: list[tuple[float, int, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> PageLoad:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        wait_until(lambda: len(self.results) > 20 or self.failures, what="load to flow")
        return self

    def _run(self) -> None:
        end = time.monotonic() + self.deadline_seconds
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        pacer = Pacer(self.rate)
        while not self._stop.is_set() and time.monotonic() < end:
            pacer.wait(self._stop)
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                body = response.read().decode(errors="replace").strip()
                self.results.append((time.monotonic(), response.status, body))
                if response.status != 200:
                    self.failures.append(f"{response.status} {body[:160]!r}")
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.close()

    def stop(self) -> PageLoad:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=15)
        return self

    def bodies_after(self, t: float) -> set[str]:
        return {body for when, _status, body in self.results if when > t}

    def summary(self) -> str:
        return f"{len(self.results)} requests, {len(self.failures)} failed; first failures: {self.failures[:5]}"


@dataclass
class Site:
    repo: Path
    control: Path
    server: Server
    production: int
    staging: int | None = None

    # --- requests ------------------------------------------------------------------------------

    def start_deploy(self, env: str = "production", ref: str = "main") -> dict[str, Any]:
        result: dict[str, Any] = self.server.ok("POST", "/deployments", json={"environment": env, "ref": ref})
        return result

    def deploy(self, env: str = "production", ref: str = "main") -> dict[str, Any]:
        return self.server.wait_finished(self.start_deploy(env, ref)["id"], timeout=120)

    def explain(self, deployment: dict[str, Any]) -> str:
        """A deployment's state, reason and each step's state and message, for assertion messages."""
        logs = self.server.ok("GET", f"/deployments/{deployment['id']}/logs")
        steps = "; ".join(f"{s['name']} {s['state']}: {(s.get('message') or '')[:300]}" for s in logs["steps"])
        d = deployment
        return f"{d['kind']} {d['version']} {d['state']} ({d.get('reason')}); {steps}"

    def start_rollback(self, env: str = "production") -> dict[str, Any]:
        result: dict[str, Any] = self.server.ok("POST", "/rollbacks", json={"environment": env})
        return result

    def release(self, version_text: str) -> str:
        """Commit a new VERSION file on main; returns the commit."""
        return commit(self.repo, {"VERSION": f"{version_text}\n"}, f"site {version_text}")

    # --- what is serving -----------------------------------------------------------------------

    def build_content(self, sha: str) -> str:
        """What the build of ``sha`` writes into built.txt, and so what its pages serve."""
        return f"built {git(self.repo, 'show', f'{sha}:VERSION')} {sha}"

    def port(self, env: str) -> int:
        port = self.production if env == "production" else self.staging
        assert port is not None
        return port

    def pages(self, env: str = "production", count: int = 10) -> list[tuple[int, str]]:
        """``count`` fresh GET / through the router (each a new connection, so every replica answers)."""
        out = []
        for _ in range(count):
            r = httpx.get(f"http://127.0.0.1:{self.port(env)}/", timeout=10)
            out.append((r.status_code, r.text.strip()))
        return out

    def recorded(self, env: str = "production") -> dict[str, Any]:
        """The release the server records as serving in ``env`` (status API)."""
        status = self.server.ok("GET", "/status", params={"environment": env})
        current: dict[str, Any] = status[0]["current"]
        assert current, f"no release is recorded as serving in {env}: {status}"
        return current

    def agent_state(self, env: str = "production") -> dict[str, Any]:
        with agent_api(self.server.home) as agent:
            state: dict[str, Any] = agent.get(f"/v1/environments/site.{env}").json()
        return state

    def active_pids(self, env: str = "production") -> list[int]:
        active = self.agent_state(env)["active"]
        return sorted(i["pid"] for i in active["instances"]) if active else []

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "conveyor", *args],
            env=self.server.env(),
            capture_output=True,
            text=True,
            timeout=180,
        )

    def cli_status(self, env: str = "production") -> dict[str, Any]:
        done = self.cli("status", env, "--json")
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)
        row: dict[str, Any] = next(r for r in rows if r["environment"] == env)
        return row

    def tags(self) -> list[str]:
        return git(self.repo, "tag", "--list", "v*").split()

    def tags_at(self, sha: str) -> list[str]:
        return git(self.repo, "tag", "--points-at", sha).split()

    # --- the invariant -------------------------------------------------------------------------

    def serves_what_is_recorded(self, env: str = "production") -> str:
        """After a deployment ends: the release recorded as serving is the one whose build every
        page shows, through the router, and its instances are all healthy. Returns the content."""
        current = self.recorded(env)
        expected = self.build_content(current["sha"])
        pages = self.pages(env)
        assert pages == [(200, expected)] * len(pages), (
            f"{env} records {current['version']} ({current['sha'][:12]}) as serving, whose build is "
            f"{expected!r}; GET / answered {sorted(set(pages))}"
        )
        active = self.agent_state(env)["active"]
        assert active and active["sha"] == current["sha"], f"the agent's active release is {active}, not {current}"
        states = [i["state"] for i in active["instances"]]
        assert states and all(s == "ready" for s in states), f"instances of {current['version']}: {states}"
        return expected

    def finished(self, deployment_id: str) -> bool:
        return self.server.deployment(deployment_id)["state"] in FINISHED


def start_site(
    root: Path,
    database_url: str,
    *,
    staging: bool = False,
    poll_interval: float = 0,
    process: bool = False,
    **config: Any,
) -> Site:
    control = root / "control"
    control.mkdir(parents=True)
    production = free_port()
    staging_port = free_port() if staging else None
    repo = make_site_repo(root / "site", site_config(control, production, staging_port=staging_port, **config))
    server = Server(home=root / "home", database_url=database_url, poll_interval=poll_interval, process=process)
    server.start()
    server.ok("POST", "/services", json={"source": str(repo)})
    return Site(repo, control, server, production, staging_port)


def stop_site(site: Site) -> None:
    site.server.stop()
    stop_agent(site.server.home)


def site_fixture(root: Path, database_url: str, **config: Any) -> Iterator[Site]:
    site = start_site(root, database_url, **config)
    try:
        yield site
    finally:
        stop_site(site)
