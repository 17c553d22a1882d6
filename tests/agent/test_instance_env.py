"""What an app instance can reach: a real agent, started the way the server starts it, runs a tiny
app that prints its whole environment. The server's secrets are in the environment the agent is
started from; the app must see its release's env, PORT and CONVEYOR_* descriptions, and no secret.
With ``agent_run_as`` the app runs as that (unprivileged) user."""

from __future__ import annotations

import json
import os
import pwd
import shlex
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conveyor.agent.client import AgentClient, agent_environment, ensure_agent
from conveyor.agent.run_as import resolve_run_as
from conveyor.agent.supervisor import HealthConfig, Instance, InstanceState, ReleaseSpec
from conveyor.devserver import free_port
from conveyor.errors import InvalidInput

T = TypeVar("T")
SECRETS = {
    "CONVEYOR_TOKEN": "server-api-token-secret",
    "CONVEYOR_DATABASE_URL": "postgresql://conveyor:db-password-secret@127.0.0.1/conveyor",
    "CONVEYOR_GITHUB_WEBHOOK_SECRET": "webhook-secret-value",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.example/secret",
}
# prints its environment and its user (no flush: instances get PYTHONUNBUFFERED), answers 200
ENV_APP = """\
import http.server, json, os
print("ENV " + json.dumps(dict(os.environ), sort_keys=True))
print("UID %d" % os.getuid())
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""
COMMAND = f"exec {shlex.quote(sys.executable)} app.py"
SYSTEM_PYTHON = "/usr/bin/python3"
HEALTH = {"path": "/healthz", "interval": 0.05, "successes": 2, "timeout": 20}


def wait_until(check: Callable[[], T], timeout: float = 30.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
        time.sleep(0.02)


def printed_env(lines: list[str]) -> dict[str, str] | None:
    for line in lines:
        if line.startswith("ENV "):
            env: dict[str, str] = json.loads(line[4:])
            return env
    return None


@pytest.fixture
def app_dir() -> Iterator[Path]:
    """The app in a directory any user may read (not under pytest's private tmp root)."""
    path = Path(tempfile.mkdtemp(prefix="conveyor-env-app-"))
    path.chmod(0o755)
    (path / "app.py").write_text(ENV_APP)
    (path / "app.py").chmod(0o644)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentClient]:
    """An agent started by ensure_agent (as the server starts it) from an environment full of secrets."""
    for key in [k for k in os.environ if k.startswith("CONVEYOR_")]:
        monkeypatch.delenv(key)
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))
    home = tmp_path / "home"
    client = ensure_agent(home)
    try:
        yield client
    finally:
        pid = json.loads((home / "agent" / "agent.json").read_text())["pid"]
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not (home / "agent" / "agent.json").exists(), what="the agent to stop")


def test_an_instance_gets_its_release_env_and_none_of_the_servers_secrets(
    agent: AgentClient, app_dir: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    assert stat.S_IMODE((home / "agent" / "token").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "agent").stat().st_mode) == 0o700

    agent.call("PUT", "/v1/environments/shop.production", json={"port": free_port()})
    release_env = {"GREETING": "hello from conveyor.yml", "CONVEYOR_VERSION": "v1.0.0", "CONVEYOR_ENV": "production"}
    release = {"version": "v1.0.0", "sha": "a" * 40, "workdir": str(app_dir), "command": COMMAND, "env": release_env}
    body = {"id": "op-env", "release": release, "replicas": 1, "health": HEALTH}
    agent.call("POST", "/v1/environments/shop.production/operations", json=body)

    def finished() -> dict[str, Any] | None:
        op: dict[str, Any] = agent.call("GET", "/v1/environments/shop.production/operations/op-env")
        return op if op["state"] != "running" else None

    assert wait_until(finished, what="the deploy")["state"] == "succeeded"
    output: list[dict[str, Any]] = agent.call("GET", "/v1/environments/shop.production/output")
    assert len(output) == 1
    env = wait_until(lambda: printed_env(output[0]["lines"]), what="the ENV line")
    instance = output[0]

    assert env["GREETING"] == "hello from conveyor.yml"
    assert env["PORT"] == str(instance["port"])
    assert env["CONVEYOR_INSTANCE"] == instance["id"]
    assert (env["CONVEYOR_VERSION"], env["CONVEYOR_ENV"]) == ("v1.0.0", "production")
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"] == os.environ["PATH"]
    for name, value in SECRETS.items():
        assert name not in env, name
        assert all(value not in v for v in env.values()), name
    assert "CONVEYOR_HOME" not in env
    assert not any(str(home) in v for v in env.values()), "the instance learns where HOME is"
    basics = {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PWD"}  # sh sets PWD
    documented = {"PORT", "CONVEYOR_INSTANCE", "PYTHONUNBUFFERED", *release_env}
    unexpected = {k for k in env if k not in basics | documented and not k.startswith("LC_")}
    assert not unexpected, f"an allow-list lets only these through: {sorted(unexpected)}"
    assert output[0]["lines_seen"] >= 2


def _nobody() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


@pytest.mark.skipif(
    os.geteuid() != 0 or _nobody() is None or not os.access(SYSTEM_PYTHON, os.X_OK),
    reason="switching users needs root, user nobody and /usr/bin/python3",
)
async def test_with_run_as_the_instance_runs_as_that_user(app_dir: Path) -> None:
    nobody = _nobody()
    assert nobody is not None
    run_as = resolve_run_as("nobody")
    assert run_as is not None and run_as.uid == nobody.pw_uid
    # the system Python: this test's own interpreter may live where nobody may not go
    release = ReleaseSpec("v1", "b" * 40, str(app_dir), f"exec {SYSTEM_PYTHON} app.py", {"CONVEYOR_VERSION": "v1"})
    health = HealthConfig(path="/healthz", interval=0.05, successes=2, failures=10, timeout=20)
    inst = Instance("shop-v1-1", release, health, lambda: None, run_as=run_as)
    await inst.start()
    try:
        assert await inst.wait_ready(20), inst.failure_report()
        lines = list(inst.logs)
        assert f"UID {nobody.pw_uid}" in lines
        env = printed_env(lines)
        assert env is not None and env["HOME"] == nobody.pw_dir
    finally:
        await inst.stop(grace=2)
    assert inst.state == InstanceState.STOPPED


def test_run_as_refuses_a_user_it_cannot_switch_to() -> None:
    assert resolve_run_as(None) is None
    with pytest.raises(InvalidInput, match="'no-such-user-xyz', which does not exist"):
        resolve_run_as("no-such-user-xyz")
    with pytest.raises(InvalidInput, match="is root"):
        resolve_run_as("root")
    nobody = _nobody()
    if nobody is not None:
        with pytest.raises(InvalidInput, match="needs the agent to run as root"):
            resolve_run_as("nobody", euid=12345)
        assert resolve_run_as("nobody", euid=nobody.pw_uid) is None  # already that user


def test_the_embedded_agent_starts_with_its_own_settings_and_no_secret(tmp_path: Path) -> None:
    server_env = {
        **SECRETS,
        "PATH": "/usr/bin",
        "CONVEYOR_HOME": "/elsewhere",
        "CONVEYOR_AGENT_RUN_AS": "conveyor-app",
        "CONVEYOR_ROUTER_HEADER_TIMEOUT": "5",
    }
    assert agent_environment(tmp_path, server_env) == {
        "PATH": "/usr/bin",
        "CONVEYOR_AGENT_RUN_AS": "conveyor-app",
        "CONVEYOR_ROUTER_HEADER_TIMEOUT": "5",
        "CONVEYOR_HOME": str(tmp_path.resolve()),
    }
