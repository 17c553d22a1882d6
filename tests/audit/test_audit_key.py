"""The audit chain under a key kept outside the database, and its anchor (issue 11): deleting the
newest entries, rehashing an edited entry without the key, or rewriting the whole log are all
found; entries from before the key are accepted only as a prefix; the key file is private."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from conveyor.audit import keys
from conveyor.audit import log as audit
from conveyor.errors import InvalidInput
from conveyor.settings import Settings
from conveyor.store.db import Database
from conveyor.store.tables import audit_log

T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def settings(home: Path) -> Settings:
    return Settings(home=home, audit_key=None)


def append(db: Database, count: int, start: int = 0) -> list[int]:
    ids = []
    for i in range(start, start + count):
        with db.begin() as conn:
            at = T0 + timedelta(seconds=i)
            ids.append(audit.append(conn, at=at, actor="rita", action="deployment.requested", subject=f"d{i}"))
    return ids


def test_the_key_file_is_made_once_and_private(db: Database, tmp_path: Path) -> None:
    home = tmp_path / "home"
    binding = keys.bind(db, settings(home))
    assert binding is not None
    key_file = home / "audit.key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and home.stat().st_mode & 0o777 == 0o700
    assert binding.key == key_file.read_text().strip().encode() and len(binding.key) == 64
    other = Database(db.url)
    again = keys.bind(other, settings(home))
    other.dispose()
    assert again is not None and again.key == binding.key


def test_deleting_the_newest_entries_is_found_by_the_anchor(db: Database, tmp_path: Path) -> None:
    keys.bind(db, settings(tmp_path / "home"))
    ids = append(db, 6)
    with db.read() as conn:
        check = audit.verify(conn)
    assert check.ok and check.entries == 6 and check.unkeyed == 0
    assert check.head is not None and check.head.id == ids[-1] and check.anchor == check.head
    assert (tmp_path / "home" / "audit.head").stat().st_mode & 0o777 == 0o600
    with db.begin() as conn:  # before the fix this verified: the rest of the chain is intact
        conn.execute(delete(audit_log).where(audit_log.c.id.in_(ids[-2:])))
    with db.read() as conn:
        check = audit.verify(conn)
    assert not check.ok and check.bad_entry == ids[-1]
    assert check.problem and "newest entries were deleted" in check.problem and f"entry {ids[-3]}" in check.problem


def test_a_head_kept_elsewhere_finds_truncation_without_the_anchor(db: Database, tmp_path: Path) -> None:
    home = tmp_path / "home"
    keys.bind(db, settings(home))
    append(db, 3)
    with db.read() as conn:
        kept = audit.verify(conn).head
    assert kept is not None
    append(db, 1, start=3)
    with db.read() as conn:
        assert audit.verify(conn, expect=kept.hash).ok
    with db.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id >= kept.id))
    (home / "audit.head").unlink()  # whoever truncated the log also removed the anchor
    with db.read() as conn:
        check = audit.verify(conn, expect=kept.hash)
    assert not check.ok and check.problem and f"the head {kept.hash} is not in the log" in check.problem


def _rehash_from(db: Database, first_id: int, key: bytes | None) -> None:
    """What an attacker with write access does after an edit: recompute every hash from there on."""
    with db.begin() as conn:
        rows = conn.execute(select(audit_log).order_by(audit_log.c.id)).all()
        prev = audit.GENESIS
        for row in rows:
            if row.id >= first_id:
                digest = audit.entry_hash(prev, row.at, row.actor, row.action, row.subject, row.details, key)
                conn.execute(update(audit_log).where(audit_log.c.id == row.id).values(prev_hash=prev, hash=digest))
                prev = digest
            else:
                prev = row.hash


def test_an_edit_rehashed_without_the_key_is_found(db: Database, tmp_path: Path) -> None:
    keys.bind(db, settings(tmp_path / "home"))
    ids = append(db, 5)
    with db.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == ids[2]).values(actor="mallory"))
    _rehash_from(db, ids[2], None)  # plain SHA-256 chain, as the old verify accepted
    with db.read() as conn:
        check = audit.verify(conn)
    assert not check.ok and check.bad_entry == ids[2] and check.problem and "without the audit key" in check.problem
    _rehash_from(db, ids[0], None)  # the whole log rewritten as if from before the key
    with db.read() as conn:
        check = audit.verify(conn)
    assert not check.ok and check.bad_entry == ids[-1] and check.problem and "rewritten" in check.problem
    _rehash_from(db, ids[0], b"a key guessed by the attacker")
    with db.read() as conn:
        assert audit.verify(conn).bad_entry == ids[0]


def test_entries_from_before_the_key_are_only_a_prefix(db: Database, database_url: str, tmp_path: Path) -> None:
    old = append(db, 2)  # an older server, before keys existed
    keys.bind(db, settings(tmp_path / "home"))
    append(db, 2, start=2)
    with db.read() as conn:
        check = audit.verify(conn)
    assert check.ok and check.entries == 4 and check.unkeyed == 2
    unkeyed = Database(database_url)  # a handle without the key appends a plain entry after keyed ones
    try:
        with unkeyed.begin() as conn:
            late = audit.append(conn, at=T0, actor="x", action="y", subject="z")
    finally:
        unkeyed.dispose()
    with db.read() as conn:
        check = audit.verify(conn)
    assert not check.ok and check.bad_entry == late and old[0] < late


def test_no_new_key_is_made_for_a_keyed_log(db: Database, tmp_path: Path) -> None:
    keys.bind(db, settings(tmp_path / "server-home"))
    append(db, 1)
    other = Database(db.url)
    try:
        with pytest.raises(InvalidInput, match=r"audit\.key is missing") as caught:
            keys.bind(other, settings(tmp_path / "other-home"))
        assert caught.value.fix and "CONVEYOR_AUDIT_KEY" in caught.value.fix
        assert not (tmp_path / "other-home" / "audit.key").exists()
        assert keys.bind(other, settings(tmp_path / "other-home"), create=False) is None
    finally:
        other.dispose()


def test_the_anchor_moves_only_after_a_commit(db: Database, tmp_path: Path) -> None:
    binding = keys.bind(db, settings(tmp_path / "home"))
    assert binding and binding.anchor
    [first] = append(db, 1)
    with pytest.raises(RuntimeError), db.begin() as conn:
        audit.append(conn, at=T0, actor="x", action="y", subject="rolled back")
        raise RuntimeError("the transaction fails after the append")
    anchored = binding.anchor.read()
    assert anchored is not None and anchored.id == first
    with db.read() as conn:
        assert audit.verify(conn).ok


def test_a_configured_key_is_used_and_checked(db: Database, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="16 random characters"):
        keys.bind(db, Settings(home=tmp_path / "h", audit_key="short"))
    binding = keys.bind(db, Settings(home=tmp_path / "h", audit_key="k" * 32))
    assert binding and binding.key == b"k" * 32 and binding.key_source == "CONVEYOR_AUDIT_KEY"
    [entry] = append(db, 1)
    with db.read() as conn:
        row = conn.execute(select(audit_log).where(audit_log.c.id == entry)).one()
    body = (row.prev_hash, row.at, row.actor, row.action, row.subject, row.details)
    assert row.hash == audit.entry_hash(*body, key=b"k" * 32) != audit.entry_hash(*body)
