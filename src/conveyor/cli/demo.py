"""conveyor demo: a demo workspace (a git repository of examples/demo-app with develop and
main, and a conveyor.yml for development, staging and production), a server on it, and the two
automatic deployments, then it stays up until Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer

import conveyor
from conveyor import httpclient
from conveyor.cli.output import console, fail

if TYPE_CHECKING:
    from conveyor.devserver import ServerProcess

FINISHED = {"succeeded", "failed", "rolled_back", "cancelled"}
# dashboard users, one per role: (name, roles, password); admin also deploys the demo's releases
DEMO_USERS = (
    ("eve", ["engineer"], "eve-demo-pw"),
    ("rita", ["release_manager"], "rita-demo-pw"),
    ("max", ["manager"], "max-demo-pw"),
    ("admin", ["admin", "release_manager"], "conveyor-demo"),
)


def demo_app_source() -> Path:
    here = Path(conveyor.__file__).resolve().parents[2] / "examples" / "demo-app"
    if not (here / "app.py").is_file():
        raise fail(f"the demo app is not at {here}; run `make demo` from a clone of the Conveyor repository")
    return here


def demo_config(base_port: int) -> str:
    return textwrap.dedent(
        f"""\
        # The Conveyor demo service. Development follows develop, staging follows main,
        # production is deployed by hand (`conveyor deploy production --ref main`).
        service: demo-shop
        run: {sys.executable} app.py --port $PORT
        health: {{path: /healthz, interval: 500ms, successes: 2, timeout: 30s}}
        environments:
          development:
            branch: develop
            auto_deploy: true
            target: {{kind: local, port: {base_port + 1}, replicas: 1}}
          staging:
            branch: main
            auto_deploy: true
            target: {{kind: local, port: {base_port + 2}, replicas: 2}}
            smoke: python3 smoke.py $CONVEYOR_URL
          production:
            target: {{kind: local, port: {base_port + 3}, replicas: 2}}
            rollout: {{strategy: rolling, max_surge: 1}}
            quick_rollback: 15m
            migrate: DEMO_DB=$CONVEYOR_STATE_DIR/shop.db python3 migrations/migrate.py
            smoke: python3 smoke.py $CONVEYOR_URL
            tag: {{bump: minor}}
        hotfix: {{branch_prefix: hotfix/, reviews: 1}}
        """
    )


def _git(repo: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Demo",
        "GIT_AUTHOR_EMAIL": "demo@example.com",
        "GIT_COMMITTER_NAME": "Demo",
        "GIT_COMMITTER_EMAIL": "demo@example.com",
    }
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def make_repo(workspace: Path, base_port: int) -> Path:
    repo = workspace / "demo-shop"
    shutil.copytree(demo_app_source(), repo, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    (repo / "conveyor.yml").write_text(demo_config(base_port))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "Demo shop: first version")
    _git(repo, "checkout", "-q", "-b", "develop")
    (repo / "VERSION").write_text("dev (develop branch)\n")
    _git(repo, "commit", "-q", "-am", "Work in progress on develop")
    _git(repo, "checkout", "-q", "main")
    return repo


def stop_apps(home: Path) -> None:
    """Stop the agent of the demo's home, and with it every app instance it runs."""
    info = home / "agent" / "agent.json"
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, ProcessLookupError):
        pid = int(json.loads(info.read_text())["pid"])
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.1)


def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise fail(f"timed out waiting for {what}")


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def demo(
    workspace: Annotated[Path, typer.Option(help="where to create the demo")] = Path("demo-workspace"),
    base_port: Annotated[
        int, typer.Option("--port", "--base-port", help="server port; environments use the next three")
    ] = 8000,
) -> None:
    """Create a demo workspace, start the server on it, and deploy develop and main."""
    signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly on SIGTERM as on Ctrl-C
    workspace = workspace.resolve()
    home = workspace / "home"
    if workspace.exists():
        stop_apps(home)
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    repo = make_repo(workspace, base_port)
    db_url = f"sqlite:///{home / 'conveyor.db'}"
    from conveyor.auth.users import add_user, create_token  # the database: not when every command starts
    from conveyor.devserver import ServerProcess, server_env
    from conveyor.store.db import Database

    db = Database(db_url)
    db.migrate()
    now = datetime.now(UTC)
    with db.begin() as conn:
        users = {name: add_user(conn, name, roles, now, password) for name, roles, password in DEMO_USERS}
        token = create_token(conn, users["admin"], now, "demo")
    db.dispose()
    # the demo registers its checkout from the workspace
    env = server_env(home, db_url, base_port, poll_interval=2, extra={"CONVEYOR_SOURCE_LOCAL_ROOTS": str(workspace)})
    server = ServerProcess(base_port, env, workspace / "server.log")
    try:
        _run(server, token, repo, workspace, base_port)
    finally:
        server.stop()
        stop_apps(home)


def setup_flags(http: httpx.Client, home: Path) -> None:
    """The flag behind the demo's /checkout page: on in development, 50% in staging, off in
    production; an SDK key per environment, in the file the demo app reads."""
    http.post(
        "/flags", json={"key": "new_checkout_flow", "service": "demo-shop", "description": "the one-page checkout"}
    ).raise_for_status()
    for env in ("development", "staging", "production"):
        key = http.post("/flags/sdk-keys", json={"environment": env, "service": "demo-shop"}).raise_for_status()
        state = home / "state" / "demo-shop" / env
        state.mkdir(parents=True, exist_ok=True)
        (state / "flags.key").write_text(key.json()["key"])
    http.post("/flags/new_checkout_flow/environments/development/on", json={}).raise_for_status()
    http.post("/flags/new_checkout_flow/environments/staging/rollout", json={"percent": 50}).raise_for_status()
    http.post("/flags/new_checkout_flow/environments/staging/on", json={}).raise_for_status()


def _wait_finished(http: httpx.Client, d: dict[str, Any]) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        detail: dict[str, Any] = http.get(f"/deployments/{d['id']}").json()
        return detail if detail["state"] in FINISHED else None

    result: dict[str, Any] = _wait(done, 180, f"the {d['environment']} deployment")
    return result


def _run(server: ServerProcess, token: str, repo: Path, workspace: Path, port: int) -> None:
    url = server.url
    users = "\n".join(f"            {n} / {pw}   ({', '.join(roles)})" for n, roles, pw in DEMO_USERS)
    http = httpclient.client(url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    console.print(f"Starting the Conveyor server on {url} ...")
    try:
        server.start(timeout=60)
    except RuntimeError as exc:
        raise fail(f"the server did not start; see {workspace / 'server.log'}") from exc
    added = http.post("/services", json={"source": str(repo)}).raise_for_status().json()
    console.print(f"Service [bold]{added['service']}[/bold] added from {repo}")
    for d in added["deployments"]:
        console.print(f"  deploying {d['ref']} to {d['environment']} ...")
    finished = [_wait_finished(http, d) for d in added["deployments"]]
    console.print("  deploying main to production (tag, migrate, rolling update, smoke) ...")
    production = http.post(
        "/deployments", json={"environment": "production", "ref": "main", "notes": "first release", "ticket": "DEMO-1"}
    )
    finished.append(_wait_finished(http, production.raise_for_status().json()))
    for d in finished:
        console.print(f"  {d['environment']}: {d['state']} ({d['version']})", soft_wrap=True)
    setup_flags(http, workspace / "home")
    if any(d["state"] != "succeeded" for d in finished):
        raise fail(f"a demo deployment did not succeed; see `conveyor logs ID` and {workspace / 'server.log'}")
    console.print(
        textwrap.dedent(f"""
        [bold green]Conveyor demo is up.[/bold green]
          Dashboard:      {url}/   sign in as one of (user / password, role):
{users}
          API:            {url}/api/v1   (OpenAPI: {url}/docs)
          development:    http://127.0.0.1:{port + 1}   (follows develop)
          staging:        http://127.0.0.1:{port + 2}   (follows main)
          production:     http://127.0.0.1:{port + 3}   (v0.1.0; deployed by hand)
          feature flag:   http://127.0.0.1:{port + 1}/checkout?user=alice   (new_checkout_flow: on in
                          development, 50% in staging, off in production)
          repository:     {repo}

        Use the CLI from another terminal:
          export CONVEYOR_URL={url}
          export CONVEYOR_TOKEN={token}
          source .venv/bin/activate

        Try next:
          conveyor status
          git -C {repo} commit --allow-empty -m change     # main -> staging, by itself
          conveyor deploy production --ref main --notes "second release" --ticket DEMO-2 --wait
          conveyor rollback production --wait                  # a router switch: v0.1.0 is warm
          conveyor maintenance production on
          conveyor flags kill new_checkout_flow --env staging   # every staging instance sees it at once
          conveyor logs <deployment id>

        Press Ctrl-C to stop the demo (server and apps)."""),
        soft_wrap=True,
    )
    try:
        while server.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("Stopping the demo ...")
