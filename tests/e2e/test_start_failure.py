"""A deployment whose very first step cannot run (here: its commit vanished from the repository
while it waited its turn) fails with the reason; it never stays queued."""

from __future__ import annotations

from typing import Any

from tests.conftest import wait_until
from tests.e2e.conftest import World
from tests.e2e.harness import effects, git


def test_a_deployment_that_cannot_start_fails_with_its_reason(world: World) -> None:
    server = world.server
    server.ok("POST", "/services", json={"source": str(world.repo)})
    hold = world.effects / "hold-migrate"
    hold.touch()  # the first production deployment holds the environment in its migrate step
    first = server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
    wait_until(lambda: any(e.startswith("migrate start production") for e in effects(world.effects)), 60, "migrate")

    doomed = git(world.repo, "commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", "doomed")
    git(world.repo, "branch", "doomed", doomed)
    second = server.ok("POST", "/deployments", json={"environment": "production", "ref": "doomed"})
    assert second["state"] == "pending" and second["sha"] == doomed  # production lints its migrations first
    wait_until(lambda: server.ok("GET", f"/deployments/{second['id']}")["state"] == "queued", 60, "its turn")
    git(world.repo, "branch", "-D", "doomed")  # the commit is gone before its turn comes
    git(world.repo, "reflog", "expire", "--expire-unreachable=now", "--all")
    git(world.repo, "gc", "-q", "--prune=now")
    hold.unlink()

    assert server.wait_finished(first["id"])["state"] == "succeeded"

    def finished() -> dict[str, Any] | None:
        d: dict[str, Any] = server.ok("GET", f"/deployments/{second['id']}")
        return d if d["state"] not in ("pending", "queued", "running") else None

    done = wait_until(finished, timeout=60, what="the deployment of a vanished commit to finish")
    assert done["state"] == "failed", done
    assert done["reason"].startswith("could not start: ") and doomed in done["reason"], done["reason"]
    assert all(s["state"] == "skipped" for s in done["steps"]), done["steps"]
    [current] = server.ok("GET", "/status", params={"environment": "production"})
    assert current["current"]["sha"] == first["sha"]  # what served keeps serving
