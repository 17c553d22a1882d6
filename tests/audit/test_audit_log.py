"""The hash-chained audit log on SQLite and PostgreSQL: appends verify, an edited or deleted row
is found and named, and concurrent writers still build one unbroken chain."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import delete, func, select, update

from conveyor.audit import log as audit
from conveyor.store.db import Database
from conveyor.store.tables import audit_log

T0 = datetime(2025, 3, 4, 10, 30, 0, 123456, tzinfo=UTC)


def append_many(db: Database, count: int, actor: str = "alice") -> list[int]:
    ids = []
    for i in range(count):
        with db.begin() as conn:
            ids.append(
                audit.append(
                    conn,
                    at=T0 + timedelta(seconds=i),
                    actor=actor,
                    action="deployment.requested",
                    subject=f"dep-{i}",
                    details={"n": i, "ref": "main", "nested": {"list": [1, 2.5, None, "x"]}, "ünïcode": "✓"},
                )
            )
    return ids


def test_an_empty_log_verifies(db: Database) -> None:
    with db.begin() as conn:
        assert audit.verify(conn) == audit.ChainCheck(True, 0)


def test_appended_entries_chain_and_verify(db: Database) -> None:
    ids = append_many(db, 5)
    assert ids == sorted(ids) and len(set(ids)) == 5
    with db.begin() as conn:
        check = audit.verify(conn)
        rows = conn.execute(select(audit_log).order_by(audit_log.c.id)).all()
    assert check.ok and check.entries == 5 and check.bad_entry is None
    assert rows[0].prev_hash == audit.GENESIS
    for before, after in itertools.pairwise(rows):
        assert after.prev_hash == before.hash
    assert rows[2].details == {"n": 2, "ref": "main", "nested": {"list": [1, 2.5, None, "x"]}, "ünïcode": "✓"}


def test_an_edited_row_is_named(db: Database) -> None:
    ids = append_many(db, 5)
    with db.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == ids[2]).values(details={"n": 2, "ref": "evil"}))
    with db.begin() as conn:
        check = audit.verify(conn)
    assert not check.ok
    assert check.bad_entry == ids[2]
    assert check.entries == 3 and check.problem and "edited" in check.problem


def test_an_edited_actor_of_the_last_row_is_named(db: Database) -> None:
    ids = append_many(db, 3)
    with db.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == ids[-1]).values(actor="mallory"))
        assert audit.verify(conn).bad_entry == ids[-1]


def test_a_deleted_row_is_named_by_the_entry_after_it(db: Database) -> None:
    ids = append_many(db, 5)
    with db.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id == ids[2]))
    with db.begin() as conn:
        check = audit.verify(conn)
    assert not check.ok
    assert check.bad_entry == ids[3]
    assert check.problem and "prev_hash" in check.problem


def test_a_timestamp_moved_is_named(db: Database) -> None:
    ids = append_many(db, 3)
    with db.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == ids[1]).values(at=T0 - timedelta(days=1)))
        assert audit.verify(conn).bad_entry == ids[1]


def test_an_entry_at_a_non_utc_offset_verifies(db: Database) -> None:
    with db.begin() as conn:
        audit.append(
            conn,
            at=datetime(2025, 3, 4, 12, 0, tzinfo=timezone(timedelta(hours=2))),
            actor="alice",
            action="user.added",
            subject="bob",
        )
        assert audit.verify(conn).ok


def test_concurrent_writers_build_one_chain(db: Database) -> None:
    threads, per_thread = 4, 25
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def writer(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(per_thread):
                with db.begin() as conn:
                    audit.append(
                        conn,
                        at=datetime.now(UTC),
                        actor=f"writer-{n}",
                        action="flag.changed",
                        subject=f"{n}-{i}",
                        details={"i": i},
                    )
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not any(w.is_alive() for w in workers)
    assert errors == []
    with db.begin() as conn:
        check = audit.verify(conn)
        prev_hashes = conn.execute(select(audit_log.c.prev_hash)).scalars().all()
        subjects = set(conn.execute(select(audit_log.c.subject)).scalars())
        total = conn.execute(select(func.count()).select_from(audit_log)).scalar()
    assert check.ok, check
    assert check.entries == total == threads * per_thread
    assert len(set(prev_hashes)) == len(prev_hashes)  # no fork: each entry follows a different one
    assert subjects == {f"{n}-{i}" for n in range(threads) for i in range(per_thread)}
