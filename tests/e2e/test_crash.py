"""Crash safety: SIGKILL the server in the middle of a step, start it again, and the deployment
finishes with every step's effect exactly once (one build, one migration, one tag, one rollout)."""

from __future__ import annotations

import pytest
from tests.e2e.conftest import World
from tests.e2e.harness import effects, git, wait_step_started

STEPS_WITH_EFFECTS = ["prepare", "migrate", "rollout", "smoke"]
KILLED_IN = ["prepare", "migrate", "smoke"]  # a kill during the rollout: test_event_stream.py
pytestmark = pytest.mark.server_process  # SIGKILL needs a server in its own process


@pytest.mark.parametrize("step", KILLED_IN)
def test_server_killed_mid_step_resumes_without_repeating_effects(world: World, step: str) -> None:
    for d in world.server.ok("POST", "/services", json={"source": str(world.repo)})["deployments"]:
        world.server.wait_finished(d["id"])
    hold = world.effects / f"hold-{step}"
    hold.touch()
    d = world.server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
    wait_step_started(world.effects, f"{step} start production")

    world.server.kill()  # SIGKILL: the step's process keeps running, the server is gone
    world.server.start()  # same data directory, database and port
    hold.unlink()

    final = world.server.wait_finished(d["id"])
    assert final["state"] == "succeeded", final
    production = [e for e in effects(world.effects) if " production " in f"{e} "]
    for name in STEPS_WITH_EFFECTS:
        assert sum(1 for e in production if e.startswith(f"{name} start")) == 1, production
        assert sum(1 for e in production if e.startswith(f"{name} done")) == 1, production
    assert git(world.repo, "tag", "--list", "v*").split() == ["v0.1.0"]  # one tag
    assert [s["state"] for s in final["steps"]] == ["succeeded"] * 6
    assert (world.effects / "serving-production").read_text().split()[0] == "v0.1.0"


def test_server_killed_while_deployments_wait_in_the_queue(world: World) -> None:
    world.server.ok("POST", "/services", json={"source": str(world.repo)})
    (world.effects / "hold-rollout").touch()
    first = world.server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
    second = world.server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
    wait_step_started(world.effects, "rollout start production")
    world.server.kill()
    world.server.start()
    (world.effects / "hold-rollout").unlink()
    a, b = world.server.wait_finished(first["id"]), world.server.wait_finished(second["id"])
    assert a["state"] == b["state"] == "succeeded"
    assert a["finished_at"] <= b["started_at"]
    # the same commit deploys as the same release: one tag
    assert a["version"] == b["version"] == "v0.1.0"
    assert git(world.repo, "tag", "--list", "v*").split() == ["v0.1.0"]
