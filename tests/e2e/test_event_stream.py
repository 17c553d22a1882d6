"""The event stream across a server SIGKILL: a deployment killed in the middle of its rollout
finishes after the restart, and its events tell its whole life, in order, with nothing missing:
every state change once, each step finished once (a step interrupted by the kill starts twice,
because it really did), exactly what a consumer following the stream sees. It is also
test_crash.py's case of a kill during the rollout: each step's effect happens once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection
from tests.e2e.conftest import World
from tests.e2e.harness import effects, git, wait_step_started

from conveyor.domain.events import DeploymentMoved, StepFinished, StepStarted, StoredEvent
from conveyor.store import events
from conveyor.store.db import Database

pytestmark = pytest.mark.server_process  # SIGKILL needs a server in its own process


def test_a_deployment_killed_mid_rollout_tells_its_whole_life_in_order(world: World) -> None:
    for d in world.server.ok("POST", "/services", json={"source": str(world.repo)})["deployments"]:
        world.server.wait_finished(d["id"])
    hold = world.effects / "hold-rollout"
    hold.touch()
    d = world.server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
    wait_step_started(world.effects, "rollout start production")
    world.server.kill()
    world.server.start()
    hold.unlink()
    final = world.server.wait_finished(d["id"])
    assert final["state"] == "succeeded", final
    production = [e for e in effects(world.effects) if " production " in f"{e} "]
    for name in ("prepare", "migrate", "rollout", "smoke"):  # the crash-safety claim of test_crash.py
        assert sum(1 for e in production if e.startswith(f"{name} done")) == 1, production
    assert git(world.repo, "tag", "--list", "v*").split() == ["v0.1.0"]

    seen: list[StoredEvent] = []

    def follow(_conn: Connection, stored: StoredEvent) -> None:
        if stored.event.deployment_id == d["id"]:
            seen.append(stored)

    db = Database(world.server.database_url)
    try:
        events.consume(db, "test-follower", follow, lambda: datetime.now(UTC))
    finally:
        db.dispose()

    moves = [(e.event.from_state, e.event.to_state) for e in seen if isinstance(e.event, DeploymentMoved)]
    # production lints its migrations while pending (engine/gating.py), then queues
    assert moves == [("pending", "queued"), ("queued", "running"), ("running", "succeeded")]
    finished = [e.event.step for e in seen if isinstance(e.event, StepFinished)]
    assert finished == ["prepare", "tag", "migrate", "rollout", "smoke", "announce"]
    assert all(e.event.state == "succeeded" for e in seen if isinstance(e.event, StepFinished))
    started = [e.event.step for e in seen if isinstance(e.event, StepStarted)]
    assert started == ["prepare", "tag", "migrate", "rollout", "rollout", "smoke", "announce"]
    positions = [e.position for e in seen]
    assert positions == sorted(positions)
    # each step's events in its order: started before finished, and the deployment ends last
    order = [(type(e.event).__name__, getattr(e.event, "step", None)) for e in seen]
    assert order[:2] == [("GatesChanged", None), ("DeploymentMoved", None)]  # its gates judged, then it moves
    assert order[-1] == ("DeploymentMoved", None)
    for step in finished:
        assert order.index(("StepStarted", step)) < order.index(("StepFinished", step))
