"""Rollback under pressure, with real processes: warm and cold rollback, with and without a smoke
step, of a service whose build writes a file the app serves. Under steady load no request fails,
and afterwards every page shows the build of the release rolled back to. A rollback whose smoke
fails puts the newer release back warm (the same instances) and serving its pages, not only its
health check. And the demo, run as the README says, rolls production back.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import wait_until
from tests.e2e.harness import git
from tests.e2e.rollback_world import PageLoad, Site, site_fixture
from tests.e2e.test_demo import answers, free_block, readme_demo_command


@pytest.fixture(params=["warm", "cold"])
def window(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["smoke", "no_smoke"])
def smoke(request: pytest.FixtureRequest) -> bool:
    return request.param == "smoke"


@pytest.fixture
def site(tmp_path: Path, window: str, smoke: bool) -> Iterator[Site]:
    # cold: the previous release is stopped as soon as it is replaced, so a rollback starts it again
    quick_rollback = "15m" if window == "warm" else "0s"
    yield from site_fixture(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", quick_rollback=quick_rollback, smoke=smoke)


@pytest.fixture
def warm_site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    """On SQLite and PostgreSQL: the restore records what serves in the same transactions as any deploy."""
    yield from site_fixture(tmp_path, database_url, quick_rollback="15m", smoke=True)


def two_releases(site: Site) -> tuple[dict, dict]:
    v1 = site.deploy()
    assert v1["state"] == "succeeded", site.explain(v1)
    site.release("two")
    v2 = site.deploy()
    assert v2["state"] == "succeeded", site.explain(v2)
    assert site.pages() == [(200, site.build_content(v2["sha"]))] * 10
    return v1, v2


def test_rollback_serves_the_previous_build_with_no_failed_request(site: Site, window: str, smoke: bool) -> None:
    v1, v2 = two_releases(site)
    warm = site.agent_state()["warm"]
    if window == "warm":
        assert warm and warm["version"] == v1["version"], warm
    else:
        assert warm is None, warm
    load = PageLoad(site.production).start()
    asked = time.monotonic()
    back = site.server.wait_finished(site.start_rollback()["id"], timeout=120)
    done = time.monotonic()
    wait_until(lambda: load.bodies_after(done), what="requests after the rollback")
    load.stop()
    assert back["state"] == "succeeded", site.explain(back)
    assert back["version"] == v1["version"] == "v0.1.0"
    assert load.failures == [], load.summary()
    v1_page = site.build_content(v1["sha"])
    assert load.bodies_after(done) == {v1_page}, load.bodies_after(done)
    assert load.bodies_after(asked) <= {v1_page, site.build_content(v2["sha"])}
    assert site.pages() == [(200, v1_page)] * 10
    assert site.recorded()["version"] == "v0.1.0"
    site.serves_what_is_recorded()


def test_a_failing_rollback_puts_the_newer_release_back_warm_and_serving(warm_site: Site) -> None:
    site = warm_site
    v1, v2 = two_releases(site)
    v2_page = site.build_content(v2["sha"])
    pids = site.active_pids()
    # the smoke fails only on the old release
    (site.control / "fail-smoke-on").write_text(site.build_content(v1["sha"]) + "\n")
    load = PageLoad(site.production).start()
    back = site.server.wait_finished(site.start_rollback()["id"], timeout=120)
    done = time.monotonic()
    wait_until(lambda: load.bodies_after(done), what="requests after the rollback")
    load.stop()
    logs = site.server.ok("GET", f"/deployments/{back['id']}/logs")
    steps = {s["name"]: (s["state"], s["message"]) for s in logs["steps"]}
    assert back["state"] in {"failed", "rolled_back"}, site.explain(back)
    assert steps["smoke"][0] == "failed" and "failing on purpose" in steps["smoke"][1], steps
    assert "v0.2.0 restored" in (back.get("reason") or ""), back.get("reason")
    # its pages answer, not only its health check
    assert site.pages() == [(200, v2_page)] * 10, site.pages()
    assert load.failures == [], load.summary()
    assert load.bodies_after(done) == {v2_page}
    assert site.recorded()["version"] == "v0.2.0"
    status = site.cli_status()
    assert status["current"]["version"] == "v0.2.0", status
    assert status["latest"]["id"] == back["id"] and status["latest"]["state"] == back["state"], status
    # warm: the instances that served v0.2.0 before the rollback serve it again, never stopped
    assert site.active_pids() == pids, f"v0.2.0 was started again instead of kept warm: {pids} -> {site.active_pids()}"
    site.serves_what_is_recorded()


def test_the_demo_as_the_readme_says_then_rollback_production(tmp_path: Path) -> None:
    """The README's `make demo PORT=N` (the command make runs for it), then the demo's "Try next":
    a commit on main, `conveyor deploy production --ref main --wait`, `conveyor rollback production --wait`."""
    base = free_block()
    out = tmp_path / "demo.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [*readme_demo_command(base), "--workspace", str(tmp_path / "ws")],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    production = f"http://127.0.0.1:{base + 3}"
    try:
        wait_until(
            lambda: "Conveyor demo is up" in out.read_text() or proc.poll() is not None,
            timeout=180,
            what="the demo to come up",
        )
        text = out.read_text()
        assert proc.poll() is None, text
        cli_env = dict(env)
        for name in ("CONVEYOR_URL", "CONVEYOR_TOKEN"):
            found = re.search(rf"export {name}=(\S+)", text)
            assert found, text
            cli_env[name] = found.group(1)

        def conveyor(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "conveyor", *args], env=cli_env, capture_output=True, text=True, timeout=240
            )

        repo = tmp_path / "ws" / "demo-shop"
        git(repo, "commit", "--allow-empty", "-q", "-m", "change")
        deployed = conveyor("deploy", "production", "--ref", "main", "--notes", "second release", "--wait")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert httpx.get(production + "/version").json()["version"] == "v0.2.0"

        back = conveyor("rollback", "production", "--wait")
        assert back.returncode == 0, f"exit {back.returncode}\n{back.stdout}\n{back.stderr}"
        assert httpx.get(production + "/version").json()["version"] == "v0.1.0"
        pages = [httpx.get(production + "/").status_code for _ in range(6)]
        assert pages == [200] * 6
        status = conveyor("status", "production", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)[0]["current"]["version"] == "v0.1.0", status.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    wait_until(lambda: not answers(production + "/healthz"), timeout=30, what="the demo's apps to stop")
