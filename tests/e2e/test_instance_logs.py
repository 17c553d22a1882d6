"""Instance output and what an instance can reach, end to end: a real server (whose environment
holds its token, database URL, webhook secret and cloud keys) deploys a tiny app with the local
target; the app prints its environment and a line per request. `conveyor logs production --json`
shows those lines through the server's API; a request without a token is refused; the dashboard's
service page shows them; `conveyor logs DEPLOYMENT --json` still shows a deployment's steps."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from typing import Any

import httpx
import pytest
from tests.conftest import wait_until
from tests.e2e.harness import Server, commit, free_port, git
from tests.e2e.local import stop_agent

from conveyor.auth.users import add_user, create_token
from conveyor.store.db import Database

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value-1234",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.example/secret-path",
}
WEBHOOK_SECRET = "github-webhook-secret-5678"
# what the operator hands on by name: SENTRY_DSN to instances, AWS_ACCESS_KEY_ID to step commands
PASSED = {
    "SENTRY_DSN": "https://key@sentry.example/1",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "CONVEYOR_INSTANCE_PASS_ENV": "SENTRY_DSN,CONVEYOR_*",
    "CONVEYOR_STEP_PASS_ENV": "AWS_ACCESS_KEY_ID",
}
APP = textwrap.dedent(
    """\
    import http.server, json, os
    print("ENV " + json.dumps(dict(os.environ), sort_keys=True))
    print("hello from instance " + os.environ["CONVEYOR_INSTANCE"])
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/healthz":
                print("served " + self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
    """
)


def config(port: int) -> str:
    return textwrap.dedent(
        f"""\
        service: shop
        run: python3 app.py
        build: python3 -c "import json, os; print('STEPENV ' + json.dumps(dict(os.environ)))"
        env: {{GREETING: hello from conveyor.yml}}
        health: {{path: /healthz, interval: 100ms, successes: 2, timeout: 20s}}
        environments:
          production:
            target: {{kind: local, port: {port}, replicas: 2}}
            env: {{APP_MODE: production-mode}}
        """
    )


@dataclass
class World:
    server: Server
    port: int
    deployment: dict[str, Any]
    engineer_token: str

    def cli(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.server.env(), "CONVEYOR_TOKEN": self.engineer_token if token is None else token}
        return subprocess.run(
            [sys.executable, "-m", "conveyor", *args], env=env, capture_output=True, text=True, timeout=60
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("instance-logs")
    port = free_port()
    repo = tmp / "shop"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {"app.py": APP, "conveyor.yml": config(port)}, "shop v1")
    database_url = f"sqlite:///{tmp / 'conveyor.db'}"
    # a child-process server: what reaches steps and instances is filtered from the server's own environment
    server = Server(
        home=tmp / "home", database_url=database_url, poll_interval=0, webhook_secret=WEBHOOK_SECRET, process=True
    )
    server.make_admin_token()
    db = Database(database_url)
    now = datetime.now(UTC)
    with db.begin() as conn:  # an engineer: no deploy rights in production, may read everything
        engineer = create_token(conn, add_user(conn, "eve", ["engineer"], now, "eve-secret-pw"), now)
    db.dispose()
    original_env = server.env
    server.env = lambda: {**original_env(), **SECRETS, **PASSED}  # type: ignore[method-assign]
    server.start()
    try:
        server.ok("POST", "/services", json={"source": str(repo)})
        d = server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
        done = server.wait_finished(d["id"], timeout=90)
        assert done["state"] == "succeeded", done
        yield World(server, port, done, engineer)
    finally:
        server.stop()
        stop_agent(server.home)


def logs_json(world: World, *args: str) -> dict[str, Any]:
    result = world.cli("logs", *args, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_conveyor_logs_env_json_shows_the_instances_output(world: World) -> None:
    for n in range(6):
        assert httpx.get(f"http://127.0.0.1:{world.port}/page-{n}", timeout=10).status_code == 200

    def served_everything() -> dict[str, Any] | None:
        doc = logs_json(world, "production")
        printed = [line for inst in doc["instances"] for line in inst["lines"]]
        return doc if all(f"served /page-{n}" in printed for n in range(6)) else None

    doc = wait_until(served_everything, what="the request lines in `conveyor logs production --json`")
    assert (doc["service"], doc["environment"], doc["agent"]) == ("shop", "production", True)
    assert [i["index"] for i in doc["instances"]] == [1, 2]
    for inst in doc["instances"]:
        assert inst["role"] == "active" and inst["state"] == "ready"
        assert inst["version"] == world.deployment["version"]
        assert f"hello from instance {inst['id']}" in inst["lines"]
        assert inst["lines_seen"] >= len(inst["lines"])

    second = logs_json(world, "production", "--instance", "2", "--lines", "1")
    assert [i["index"] for i in second["instances"]] == [2]
    assert len(second["instances"][0]["lines"]) == 1


def test_an_instance_sees_its_release_env_and_none_of_the_servers_secrets(world: World) -> None:
    doc = logs_json(world, "production")
    env_line = next(line for line in doc["instances"][0]["lines"] if line.startswith("ENV "))
    env = json.loads(env_line[4:])
    assert env["GREETING"] == "hello from conveyor.yml" and env["APP_MODE"] == "production-mode"
    assert env["PORT"] == str(doc["instances"][0]["port"])
    assert (env["CONVEYOR_SERVICE"], env["CONVEYOR_ENV"]) == ("shop", "production")
    assert env["CONVEYOR_VERSION"] == world.deployment["version"]
    assert env["CONVEYOR_SHA"] == world.deployment["sha"]
    never = ("CONVEYOR_TOKEN", "CONVEYOR_HOME", "CONVEYOR_DATABASE_URL", "CONVEYOR_GITHUB_WEBHOOK_SECRET", *SECRETS)
    for name in never:
        assert name not in env, name
    everything = "\n".join(env.values())
    for secret in (world.server.token, WEBHOOK_SECRET, world.server.database_url, *SECRETS.values()):
        assert secret not in everything
    assert env["SENTRY_DSN"] == PASSED["SENTRY_DSN"]  # named in CONVEYOR_INSTANCE_PASS_ENV
    assert "AWS_ACCESS_KEY_ID" not in env  # passed to steps only


def test_a_step_command_gets_the_allow_list_too(world: World) -> None:
    detail = logs_json(world, world.deployment["id"])
    prepare = next(s for s in detail["steps"] if s["name"] == "prepare")
    env_line = next(line for line in prepare["output"].splitlines() if line.startswith("STEPENV "))
    env = json.loads(env_line[8:])
    assert env["CONVEYOR_VERSION"] == world.deployment["version"] and env["PATH"]
    assert env["GREETING"] == "hello from conveyor.yml"
    assert env["AWS_ACCESS_KEY_ID"] == PASSED["AWS_ACCESS_KEY_ID"]  # named in CONVEYOR_STEP_PASS_ENV
    for name in ("CONVEYOR_TOKEN", "CONVEYOR_HOME", "CONVEYOR_DATABASE_URL", "SENTRY_DSN", *SECRETS):
        assert name not in env, name
    everything = "\n".join(env.values())
    for secret in (world.server.token, WEBHOOK_SECRET, *SECRETS.values()):
        assert secret not in everything


def test_instance_logs_need_a_token(world: World) -> None:
    response = httpx.get(f"{world.server.url}/api/v1/environments/production/logs", timeout=10)
    assert response.status_code == 401
    assert "served" not in response.text
    refused = world.cli("logs", "production", "--json", token="not-a-token")
    assert refused.returncode == 1 and refused.stdout == "", refused.stdout
    unknown = world.server.api("GET", "/environments/nowhere/logs")
    assert unknown.status_code == 404 and "has no environment 'nowhere'" in unknown.text


def test_the_text_form_and_deployment_logs_keep_working(world: World) -> None:
    text = world.cli("logs", "production")
    assert text.returncode == 0, text.stderr
    assert "── shop.production #1" in text.stdout and "── shop.production #2" in text.stdout
    assert "hello from instance" in text.stdout

    steps = world.cli("logs", world.deployment["id"][:8])
    assert steps.returncode == 0, steps.stderr
    assert "── rollout (succeeded)" in steps.stdout
    detail = logs_json(world, world.deployment["id"][:8])
    assert detail["id"] == world.deployment["id"]
    assert {s["name"] for s in detail["steps"]} >= {"prepare", "rollout"}
    assert any("serving on 2 instance(s)" in (s.get("output") or "") for s in detail["steps"])

    bad = world.cli("logs", world.deployment["id"][:8], "--instance", "1")
    assert bad.returncode == 2, bad.stderr
    assert "--instance is for environments" in re.sub(r"[\s│╭╮╰╯─]+", " ", bad.stderr)


def test_the_service_page_shows_each_instances_output(world: World) -> None:
    with httpx.Client(base_url=world.server.url, timeout=20) as browser:
        form = browser.get("/login")
        token = form.cookies["conveyor_login"]
        signed_in = browser.post(
            "/login", data={"username": "eve", "password": "eve-secret-pw", "csrf_token": token, "next": "/"}
        )
        assert signed_in.status_code in (200, 303), signed_in.text
        page = browser.get("/services/shop")
        refreshed = browser.get("/services/shop/output/production")
    assert page.status_code == 200
    html = page.text
    assert 'href="#output-production"' in html
    section = html.split('id="output-production"', 1)[1].split("</section>", 1)[0]
    for n in (1, 2):
        log = re.search(rf'data-testid="instance-production-{n}">(.*?)</pre>', section, re.S)
        assert log, section
        assert "hello from instance shop.production-" in unescape(log.group(1))
    assert "<script" not in section
    assert 'hx-get="/services/shop/output/production" hx-trigger="every 3s"' in html
    assert refreshed.status_code == 200
    assert 'id="output-production"' in refreshed.text and "hello from instance shop.production-" in refreshed.text
    anonymous = httpx.get(world.server.url + "/services/shop/output/production", timeout=10)
    assert "hello from instance" not in anonymous.text  # signed-in users only


def test_follow_prints_new_lines_as_they_come(world: World, tmp_path_factory: pytest.TempPathFactory) -> None:
    out_path = tmp_path_factory.mktemp("follow") / "follow.out"
    env = {**world.server.env(), "CONVEYOR_TOKEN": world.engineer_token, "PYTHONUNBUFFERED": "1"}
    with out_path.open("w") as out:
        follower = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "logs", "production", "--follow"], env=env, stdout=out, stderr=out
        )
    try:
        wait_until(lambda: "── shop.production #2" in out_path.read_text(), what="the instances' headers")
        for n in range(4):
            assert httpx.get(f"http://127.0.0.1:{world.port}/followed-{n}", timeout=10).status_code == 200
        text = wait_until(
            lambda: (t := out_path.read_text()) and all(f"served /followed-{n}" in t for n in range(4)) and t,
            what="the new request lines in the followed output",
        )
        assert follower.poll() is None  # still following
        followed = [line for line in text.splitlines() if "served /followed-" in line]
        assert len(followed) == 4 and all(re.match(r"\[#[12]\] served /followed-\d$", line) for line in followed)
    finally:
        follower.terminate()
        follower.wait(timeout=10)
