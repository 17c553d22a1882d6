"""The real `conveyor` command line, run as a subprocess against a real server: --json output,
exit codes (0 done, 1 refused or failed, 2 usage), following deployments, and the admin
commands that work on the database with no server running."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import wait_until
from tests.e2e.harness import Server, commit, free_port, git, make_service_repo, service_config, wait_step_started

pytestmark = pytest.mark.sqlite_only  # see SQLITE_ONLY_DOC in tests/conftest.py

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@dataclass
class CliWorld:
    repo: Path
    effects: Path
    server: Server

    @property
    def env(self) -> dict[str, str]:
        return self.server.env()

    def serving(self, env: str) -> str:
        path = self.effects / f"serving-{env}"
        return path.read_text().split()[1] if path.exists() else ""


@pytest.fixture
def cli_world(tmp_path: Path, database_url: str) -> Iterator[CliWorld]:
    """A service repository and a running server that does not poll (so only the CLI deploys)."""
    effects = tmp_path / "effects"
    repo = make_service_repo(tmp_path / "shop", effects)
    server = Server(home=tmp_path / "home", database_url=database_url, poll_interval=0)
    server.start()
    try:
        yield CliWorld(repo, effects, server)
    finally:
        server.stop()


def conveyor(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The one JSON document on stdout of a command that succeeded (json.loads refuses anything else)."""
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return json.loads(result.stdout)


def flat(text: str) -> str:
    """Rich wraps long lines at the terminal width; compare text with whitespace collapsed."""
    return " ".join(text.split())


def add_service_by_api(world: CliWorld) -> None:
    added = world.server.ok("POST", "/services", json={"source": str(world.repo)})
    for d in added["deployments"]:
        assert world.server.wait_finished(d["id"])["state"] == "succeeded"


def test_add_deploy_inspect_and_roll_back(cli_world: CliWorld) -> None:
    world, env = cli_world, cli_world.env
    added = ok_json(conveyor("services", "add", str(world.repo), "--json", env=env))
    assert added["service"] == "shop" and added["created"] is True
    assert added["environments"] == ["development", "staging", "production"]
    assert sorted(d["environment"] for d in added["deployments"]) == ["development", "staging"]
    for d in added["deployments"]:  # the followed branches deploy; let them finish before production
        assert world.server.wait_finished(d["id"])["state"] == "succeeded"

    first = ok_json(
        conveyor(
            "deploy",
            "production",
            "--ref",
            "main",
            "--notes",
            "first",
            "--ticket",
            "PROJ-1",
            "--wait",
            "--json",
            env=env,
        )
    )
    assert first["state"] == "succeeded", first
    assert first["version"] == "v0.1.0" and first["environment"] == "production"
    assert first["ticket"] == "PROJ-1" and first["actor"] == "alice"
    assert [s["state"] for s in first["steps"]] == ["succeeded"] * 6
    assert world.serving("production") == first["sha"] == git(world.repo, "rev-parse", "main")

    second_sha = commit(world.repo, {"app.txt": "version two\n"}, "second")
    shown = conveyor("deploy", "production", "--ref", "main", "--wait", env=env)
    assert shown.returncode == 0, shown.stderr
    text = flat(shown.stdout)
    assert "6/6 steps" in text  # the progress bar's last state
    assert re.search(r"deployment [0-9a-f]{8} deploy of shop v0\.2\.0 to production: succeeded", text), text
    assert world.serving("production") == second_sha

    status = {row["environment"]: row for row in ok_json(conveyor("status", "--json", env=env))}
    assert set(status) == {"development", "staging", "production"}
    assert status["production"]["current"]["version"] == "v0.2.0"
    assert status["production"]["latest"]["sha"] == second_sha

    history = ok_json(conveyor("history", "--json", env=env))
    assert len(history) == 4
    assert [d["sha"] for d in history[:2]] == [second_sha, first["sha"]]  # newest first
    assert [d["seq"] for d in history] == sorted((d["seq"] for d in history), reverse=True)
    assert [d["created_at"] for d in history] == sorted((d["created_at"] for d in history), reverse=True)

    table = conveyor("history", "production", env=env)
    assert table.returncode == 0, table.stderr
    assert first["id"][:8] in table.stdout and history[0]["id"][:8] in table.stdout
    assert "v0.1.0" in table.stdout and "v0.2.0" in table.stdout
    assert not any(d["id"][:8] in table.stdout for d in history if d["environment"] != "production")
    # at 80 columns no table cuts an id, a date or a version
    narrow = {**env, "COLUMNS": "80"}
    everything = conveyor("history", env=narrow)
    assert everything.returncode == 0 and "…" not in everything.stdout, everything.stdout
    assert max(len(line) for line in everything.stdout.splitlines()) <= 80, everything.stdout
    for d in history:
        for value in (d["id"][:8], d["created_at"][:19], d["version"] or d["sha"][:12]):
            assert value in everything.stdout.split(), (value, everything.stdout)
    now = conveyor("status", env=narrow)
    assert now.returncode == 0 and "…" not in now.stdout, now.stdout
    for row in status.values():
        assert row["latest"]["id"][:8] in now.stdout.split() and row["current"]["version"] in now.stdout.split()

    logs = conveyor("logs", first["id"], env=env)
    assert logs.returncode == 0, logs.stderr
    for line in ("prepare ok", "migrate ok", "rollout ok", "smoke ok"):
        assert line in logs.stdout, logs.stdout
    for step in ("prepare", "tag", "migrate", "rollout", "smoke", "announce"):
        assert f"── {step}" in logs.stdout
    assert logs.stdout.index("migrate ok") < logs.stdout.index("smoke ok")
    assert f"deployment {first['id'][:8]}: succeeded" in logs.stdout

    back = ok_json(conveyor("rollback", "production", "--wait", "--json", env=env))
    assert back["state"] == "succeeded" and back["kind"] == "rollback", back
    assert back["version"] == "v0.1.0"
    assert world.serving("production") == first["sha"]

    # without a token, or with a wrong one, the server refuses and the CLI says why
    no_token = {k: v for k, v in env.items() if k != "CONVEYOR_TOKEN"}
    for bad_env in (no_token, {**env, "CONVEYOR_TOKEN": "cvy_not-a-real-token"}):
        refused = conveyor("status", "--json", env=bad_env)
        assert refused.returncode == 1 and refused.stdout == ""
        assert "token" in refused.stderr.lower(), refused.stderr


@SQLITE_ONLY
def test_failed_and_refused_deploys_exit_1_with_the_reason(cli_world: CliWorld) -> None:
    world, env = cli_world, cli_world.env
    add_service_by_api(world)
    before = len(world.server.deployments())

    refused = conveyor("deploy", "production", "--ref", "nope", "--json", env=env)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "'nope'" in refused.stderr or "nope" in refused.stderr.split(), refused.stderr
    unknown_env = conveyor("deploy", "prod", "--ref", "main", env=env)
    assert unknown_env.returncode == 1 and "prod" in unknown_env.stderr
    nothing_to_roll_back = conveyor("rollback", "production", env=env)
    assert nothing_to_roll_back.returncode == 1 and "production" in nothing_to_roll_back.stderr
    assert len(world.server.deployments()) == before  # refused requests record nothing

    (world.effects / "fail-migrate").touch()
    failed = conveyor("deploy", "production", "--ref", "main", "--wait", env=env)
    assert failed.returncode == 1, failed.stdout
    text = flat(failed.stdout + failed.stderr)
    assert "production: failed" in text
    assert "failed migrate: `./scripts/step.sh migrate` exited with code 7" in text, text
    assert "migrate failing on purpose" in text  # the step's own output says why
    # the summary names its error line and the command that shows the step's output
    hint = re.search(r"code 7: migrate failing on purpose \(its output: conveyor logs ([0-9a-f]{8})\)", text)
    assert hint, text
    shown = conveyor("logs", hint.group(1), env=env)
    assert shown.returncode == 0 and "── migrate (failed)" in shown.stdout, shown.stdout + shown.stderr
    assert "migrate failing on purpose" in shown.stdout.split("── migrate (failed)")[1]
    assert world.serving("production") == ""


@SQLITE_ONLY
def test_follow_logs_until_done_and_cancel_a_running_deployment(cli_world: CliWorld, tmp_path: Path) -> None:
    world, env = cli_world, cli_world.env
    add_service_by_api(world)
    hold = world.effects / "hold-smoke"
    hold.touch()
    running = world.server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
    wait_step_started(world.effects, "smoke start production")
    out_path = tmp_path / "follow.out"
    with out_path.open("w") as out:
        follower = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "logs", running["id"][:8], "--follow"],
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "migrate ok" in out_path.read_text(), what="the finished steps' output")
        assert follower.poll() is None, out_path.read_text()  # still following: smoke is held
        assert "smoke ok" not in out_path.read_text()
        hold.unlink()
        assert follower.wait(timeout=60) == 0, out_path.read_text()
    finally:
        hold.unlink(missing_ok=True)
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    followed = out_path.read_text()
    assert followed.count("migrate ok") == 1  # each line once, however many times it polled
    assert followed.index("migrate ok") < followed.index("smoke ok")
    assert f"deployment {running['id'][:8]}: succeeded" in followed
    assert world.server.deployment(running["id"])["state"] == "succeeded"

    commit(world.repo, {"app.txt": "held\n"}, "held")
    hold = world.effects / "hold-rollout"
    hold.touch()
    try:
        held = world.server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
        wait_step_started(world.effects, "rollout start production v0.2.0")
        cancelled = conveyor("cancel", held["id"][:8], env=env)
        assert cancelled.returncode == 0, cancelled.stderr
        assert held["id"][:8] in cancelled.stdout
        done = world.server.wait_finished(held["id"])
        assert done["state"] == "cancelled", done
        assert world.serving("production") == running["sha"]  # the previous release serves
        again = conveyor("cancel", held["id"], env=env)
        assert again.returncode == 1 and "already cancelled" in again.stderr, again.stderr
    finally:
        hold.unlink(missing_ok=True)


@SQLITE_ONLY
def test_a_missing_token_names_the_setting_to_fix(cli_world: CliWorld) -> None:
    env = {k: v for k, v in cli_world.env.items() if k != "CONVEYOR_TOKEN"}
    refused = conveyor("status", env=env)
    assert refused.returncode == 1
    assert "CONVEYOR_TOKEN" in refused.stderr, refused.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(CONVEYOR_HOME=str(tmp_path / "home"), CONVEYOR_URL=f"http://127.0.0.1:{free_port()}")
    cases = [
        ["nope"],
        ["deploy", "production"],
        ["deploy", "production", "--ref"],
        ["logs"],
        ["users", "add", "bob"],
    ]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda args: conveyor(*args, env=env), cases))
    for args, result in zip(cases, results, strict=True):
        assert result.returncode == 2, (args, result.returncode, result.stdout, result.stderr)
        assert result.stdout == "" and "Error" in result.stderr, args
    assert not (tmp_path / "home").exists()  # nothing ran


def test_an_unreachable_server_is_named(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(CONVEYOR_URL=url, CONVEYOR_TOKEN="cvy_whatever", CONVEYOR_HOME=str(tmp_path / "home"))
    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(
                lambda args: conveyor(*args, env=env),
                [["status"], ["deploy", "production", "--ref", "main", "--json"]],
            )
        )
    for result in results:
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        assert url in flat(result.stderr), result.stderr


BAD_CONFIG = textwrap.dedent(
    """\
    service: Shop!
    build: make
    environments:
      development:
        branch: develop
        auto_deploy: maybe
        target: {kind: command, deploy: ./d.sh}
      production:
        target: {kind: command, deploy: ./d.sh}
        tag: {bump: huge}
    """
)


def test_validate(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yml", tmp_path / "bad.yml"
    good.write_text(service_config(tmp_path / "effects"))
    bad.write_text(BAD_CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    with ThreadPoolExecutor(3) as pool:
        valid, invalid, missing = pool.map(
            lambda args: conveyor(*args, env=env, cwd=tmp_path),
            [["validate", "good.yml"], ["validate", "bad.yml"], ["validate"]],
        )
    assert valid.returncode == 0, valid.stderr
    assert "good.yml" in valid.stdout and "valid" in valid.stdout

    assert invalid.returncode == 1
    problems = invalid.stderr.splitlines()
    assert len(problems) == 3, invalid.stderr  # one line per problem, nothing else
    for line in problems:
        assert re.fullmatch(r"bad\.yml:\d+:\d+: \S.*", line), line
    positions = [tuple(int(n) for n in line.split(":")[1:3]) for line in problems]
    assert positions == [(1, 10), (6, 18), (10, 17)]
    assert "Shop!" in problems[0] and "maybe" in problems[1] and "huge" in problems[2]

    assert missing.returncode == 1  # no FILE: conveyor.yml in the current directory
    assert missing.stderr.strip() == "conveyor.yml:1:1: no such file"


def test_users_and_tokens_need_only_the_database(tmp_path: Path, database_url: str) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    unused = f"http://127.0.0.1:{free_port()}"  # nothing listens here: these commands must not need it
    env.update(CONVEYOR_HOME=str(home), CONVEYOR_DATABASE_URL=database_url, CONVEYOR_URL=unused)

    assert ok_json(conveyor("users", "add", "bob", "--role", "engineer", "--json", env=env)) == {
        "name": "bob",
        "roles": ["engineer"],
    }
    created = ok_json(conveyor("tokens", "create", "bob", "--json", env=env))
    assert created["user"] == "bob" and created["token"].startswith("cvy_")
    with ThreadPoolExecutor(3) as pool:
        wizard, duplicate, nobody = pool.map(
            lambda args: conveyor(*args, env=env),
            [
                ["users", "add", "carol", "--role", "wizard", "--json"],
                ["users", "add", "bob", "--role", "admin"],
                ["tokens", "create", "nobody"],
            ],
        )
    assert wizard.returncode == 1 and wizard.stdout == ""
    assert "wizard" in wizard.stderr and "engineer, release_manager, manager, admin" in flat(wizard.stderr)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    assert nobody.returncode == 1 and "nobody" in nobody.stderr

    server = Server(home=home, database_url=database_url, poll_interval=0)
    server.start()
    try:
        assert server.ok("GET", "/me", headers={"Authorization": f"Bearer {created['token']}"}) == {
            "name": "bob",
            "roles": ["engineer"],
        }
        audit = server.ok("GET", "/audit")
        assert audit["chain"]["ok"], audit["chain"]
        recorded = {(e["actor"], e["action"], e["subject"]) for e in audit["entries"]}
        assert {("cli", "user.added", "bob"), ("cli", "token.created", "bob")} <= recorded
        assert not any(e["subject"] in ("carol", "nobody") for e in audit["entries"])
        bobs = server.api("GET", "/audit", headers={"Authorization": f"Bearer {created['token']}"})
        assert bobs.status_code == 403  # an engineer's token is not an admin's
    finally:
        server.stop()
