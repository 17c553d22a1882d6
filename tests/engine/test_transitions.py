"""The transition gateway (engine/transitions.py) against the domain's table of allowed moves, on a
real database of each backend: every allowed move is made, with its timestamps, settled steps,
audit entry and event in one transaction; every other move is refused and changes nothing."""

from __future__ import annotations

import itertools
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.domain.deployment import ALLOWED_MOVES, DeploymentKind, DeploymentState, StepState
from conveyor.domain.events import DeploymentMoved
from conveyor.engine.transitions import IllegalTransition, transition
from conveyor.store import deployments as store
from conveyor.store import events
from conveyor.store.db import Database
from conveyor.store.services import upsert_service
from conveyor.store.tables import audit_log

NOW = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
ALL = list(DeploymentState)
ILLEGAL = [(a, b) for a, b in itertools.product(ALL, ALL) if (a, b) not in ALLOWED_MOVES]


def test_the_table_covers_every_state() -> None:
    """Each unfinished state can move on, no finished state can, and monitoring is reachable."""
    sources = {a for a, _ in ALLOWED_MOVES}
    assert sources == {s for s in ALL if not s.finished}
    assert (DeploymentState.RUNNING, DeploymentState.MONITORING) in ALLOWED_MOVES
    assert all(not a.finished for a, _ in ALLOWED_MOVES)


def _deployment(db: Database, state: DeploymentState) -> str:
    deployment_id = str(uuid.uuid4())
    with db.begin() as conn:
        service, _ = upsert_service(conn, "shop", "/srv/shop", "/srv/shop", "service: shop\n", NOW)
        store.insert_deployment(
            conn,
            id=deployment_id,
            service_id=service.id,
            environment="production",
            kind=DeploymentKind.DEPLOY,
            ref="main",
            sha="a" * 40,
            state=state,
            actor="eve",
            trigger="manual",
            now=NOW,
            plan=["prepare", "rollout", "smoke"],
        )
        store.update_step(conn, deployment_id, "prepare", state=StepState.SUCCEEDED)
    return deployment_id


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('transitions') / 'conveyor.db'}")
    database.migrate()
    return database


@pytest.mark.parametrize(("current", "to"), sorted(ALLOWED_MOVES), ids=lambda s: str(s))
def test_every_allowed_move_is_made_with_its_audit_entry_and_event(
    shared_db: Database, current: DeploymentState, to: DeploymentState
) -> None:
    d = _deployment(shared_db, current)
    with shared_db.read() as conn:
        head = events.head(conn)
    with shared_db.begin() as conn:
        assert transition(conn, d, to, now=NOW, actor="rita", reason="because")
    with shared_db.read() as conn:
        record = store.get_deployment(conn, d)
        steps = {s.name: s.state for s in store.get_steps(conn, d)}
        audit = conn.execute(select(audit_log).where(audit_log.c.subject == d)).all()
        stream = events.read_after(conn, head)
    assert record.state == to
    assert record.reason == "because"
    assert (record.started_at is not None) == (to == DeploymentState.RUNNING)
    assert (record.finished_at is not None) == to.finished
    if to.finished:  # the steps that never ran are settled; the one that ran keeps its result
        left = StepState.CANCELLED if to == DeploymentState.CANCELLED else StepState.SKIPPED
        assert steps == {"prepare": StepState.SUCCEEDED, "rollout": left, "smoke": left}
    else:
        assert steps["rollout"] == StepState.PENDING
    assert [(a.action, a.actor, a.details["reason"]) for a in audit] == [(f"deployment.{to}", "rita", "because")]
    moved = [e.event for e in stream if isinstance(e.event, DeploymentMoved)]
    assert moved == [
        DeploymentMoved(
            subject=d,
            service="shop",
            environment="production",
            from_state=current.value,
            to_state=to.value,
            actor="rita",
            reason="because",
        )
    ]


@pytest.mark.parametrize(("current", "to"), ILLEGAL, ids=lambda s: str(s))
def test_every_other_move_is_refused_and_changes_nothing(
    shared_db: Database, current: DeploymentState, to: DeploymentState
) -> None:
    d = _deployment(shared_db, current)
    with shared_db.read() as conn:
        head = events.head(conn)
        audited = len(conn.execute(select(audit_log.c.id)).all())
    refused = f"{current} -> {to} is not an allowed transition"
    with pytest.raises(IllegalTransition, match=refused), shared_db.begin() as conn:
        transition(conn, d, to, now=NOW, expect=[current])
    with shared_db.read() as conn:
        assert store.get_deployment(conn, d).state == current
        assert events.head(conn) == head
        assert len(conn.execute(select(audit_log.c.id)).all()) == audited


def test_a_deployment_that_moved_on_is_left_alone(db: Database) -> None:
    """A race, not a bug: the caller expected a state the deployment has already left."""
    d = _deployment(db, DeploymentState.QUEUED)
    with db.begin() as conn:
        assert transition(conn, d, DeploymentState.CANCELLED, now=NOW, expect=[DeploymentState.QUEUED])
    with db.begin() as conn:  # the workflow, a moment late, would start it
        assert not transition(conn, d, DeploymentState.RUNNING, now=NOW, expect=[DeploymentState.QUEUED])
        assert not transition(conn, d, DeploymentState.FAILED, now=NOW)  # ended already: the first one won
    with db.read() as conn:
        assert store.get_deployment(conn, d).state == DeploymentState.CANCELLED
        assert [e.event.to_state for e in events.read_after(conn, 0) if isinstance(e.event, DeploymentMoved)] == [
            "cancelled"
        ]


def test_only_the_gateway_moves_a_deployment() -> None:
    """No `store.move(` anywhere, and only the gateway updates the deployments table with a state."""
    src = Path(__file__).resolve().parents[2] / "src" / "conveyor"

    def grep(*patterns: str) -> list[str]:
        args = [a for p in patterns for a in ("-e", p)]
        out = subprocess.run(["grep", "-rn", "--include=*.py", *args, str(src)], capture_output=True, text=True)
        return out.stdout.splitlines()

    assert grep("store.move(", "def move(") == []
    writers = {line.split(":")[0].removeprefix(str(src) + "/") for line in grep("update(deployments)")}
    assert writers <= {"engine/transitions.py", "store/deployments.py"}
    assert grep(r"set_fields(.*state=") == []
