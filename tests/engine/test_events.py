"""The event stream (store/events.py): events are recorded with their change, in order, and a
consumer reading from its durable cursor handles each exactly once (its effects in the database)
even when it is SIGKILLed in the middle and started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.conftest import wait_until

from conveyor.audit import log as audit
from conveyor.domain.events import FlagChanged, Recorded, StepStarted, StoredEvent
from conveyor.store import events
from conveyor.store.db import Database

NOW = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
EVENTS = 400
PAUSE_AT = 150  # the consumer stops inside this event's transaction while the test holds it
DEPLOYMENTS = 5

# the consumer under test, as its own process: it counts each event in a table, in the same
# transaction as its cursor's move, and records the order it saw each deployment's events in
CONSUMER = textwrap.dedent(
    """\
    import sys, time
    from datetime import UTC, datetime
    from pathlib import Path
    from sqlalchemy import text
    from conveyor.store import events
    from conveyor.store.db import Database

    db = Database(sys.argv[1])
    hold, paused = Path(sys.argv[2]) / "hold", Path(sys.argv[2]) / "paused"

    def count(conn, stored):
        conn.execute(
            text("UPDATE counted SET times = times + 1 WHERE position = :p"), {"p": stored.position}
        )
        conn.execute(
            text("INSERT INTO seen (subject, position) VALUES (:s, :p)"),
            {"s": stored.event.subject, "p": stored.position},
        )
        if stored.position == PAUSE_AT:  # its effects written, not committed: the test kills it here
            paused.touch()
            while hold.exists():
                time.sleep(0.01)

    events.consume(db, "counter", count, lambda: datetime.now(UTC), batch=50)
    print("done", flush=True)
    """
)


def _produce(db: Database) -> None:
    """EVENTS events over DEPLOYMENTS deployments, a row to count each in."""
    counter = "SERIAL" if db.url.startswith("postgresql") else "INTEGER"  # SQLite's counts up by itself
    with db.begin() as conn:
        conn.execute(text("CREATE TABLE counted (position BIGINT PRIMARY KEY, times INTEGER NOT NULL)"))
        conn.execute(text(f"CREATE TABLE seen (n {counter} PRIMARY KEY, subject TEXT, position BIGINT)"))
    for start in range(0, EVENTS, 100):
        with db.begin() as conn:
            for i in range(start, start + 100):
                position = events.record(conn, StepStarted(subject=f"d{i % DEPLOYMENTS}", step=f"s{i}"), NOW)
                conn.execute(text("INSERT INTO counted (position, times) VALUES (:p, 0)"), {"p": position})


def _cursor(db: Database) -> int:
    with db.read() as conn:
        return events.cursor(conn, "counter")


def test_a_consumer_killed_mid_stream_counts_every_event_exactly_once(db: Database, tmp_path: Path) -> None:
    _produce(db)
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER.replace("PAUSE_AT", str(PAUSE_AT)))
    (tmp_path / "hold").touch()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    first = subprocess.Popen([sys.executable, str(script), db.url, str(tmp_path)], env=env, stdout=subprocess.PIPE)
    try:
        wait_until((tmp_path / "paused").exists, timeout=60, what="the consumer to be inside an event")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    (tmp_path / "hold").unlink()
    with db.read() as conn:
        assert _cursor(db) == PAUSE_AT - 1  # killed in the middle of the stream, inside an event
        started = conn.execute(text("SELECT COUNT(*) FROM seen")).scalar()
    assert started == PAUSE_AT - 1  # the killed event's own writes went with it

    second = subprocess.run(
        [sys.executable, str(script), db.url, str(tmp_path)], env=env, capture_output=True, timeout=120
    )
    assert second.returncode == 0, second.stderr.decode()[-2000:]

    with db.read() as conn:
        head = events.head(conn)
        times = conn.execute(text("SELECT times, COUNT(*) FROM counted GROUP BY times")).all()
        seen = conn.execute(text("SELECT subject, position FROM seen ORDER BY n")).all()
    assert _cursor(db) == head
    assert [tuple(r) for r in times] == [(1, EVENTS)], "each event counted exactly once"
    for d in {s for s, _ in seen}:  # in order, per deployment (and overall)
        positions = [p for s, p in seen if s == d]
        assert positions == sorted(positions)
    assert len(seen) == EVENTS


def test_a_failing_handler_leaves_the_event_for_the_next_run(db: Database) -> None:
    """At least once: the cursor moves only with a handled event, never past one that failed."""
    with db.begin() as conn:
        for i in range(3):
            events.record(conn, Recorded(subject=f"s{i}", action="test", actor="conveyor"), NOW)
    handled: list[int] = []

    def flaky(_conn: object, stored: StoredEvent) -> None:
        if stored.event.subject == "s1" and not handled.count(-1):
            handled.append(-1)
            raise RuntimeError("the chat service is down")
        handled.append(stored.position)

    with pytest.raises(RuntimeError):
        events.consume(db, "notifier", flaky, lambda: NOW)
    assert _positions(handled) == [1]
    assert events.consume(db, "notifier", flaky, lambda: NOW) == 2
    assert _positions(handled) == [1, 2, 3]
    assert events.consume(db, "notifier", flaky, lambda: NOW) == 0  # nothing new


def _positions(handled: list[int]) -> list[int]:
    return [p for p in handled if p > 0]


def test_an_audited_change_joins_the_stream_in_its_transaction(db: Database) -> None:
    """A flag change is audited and is a typed event; a transaction that fails leaves neither."""
    with db.begin() as conn:
        audit.append(conn, at=NOW, actor="rita", action="flag.updated", subject="shop/new-checkout", details={"on": 1})
    with pytest.raises(RuntimeError), db.begin() as conn:
        audit.append(conn, at=NOW, actor="rita", action="flag.deleted", subject="shop/new-checkout")
        raise RuntimeError("the change failed after its audit entry")
    with db.read() as conn:
        stream = events.read_after(conn, 0)
    assert [e.event for e in stream] == [
        FlagChanged(subject="shop/new-checkout", action="flag.updated", actor="rita", details={"on": 1})
    ]
