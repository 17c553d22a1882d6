"""Sign-in throttling and constant-time password checks (issue 11, item 10): the backoff per user
name and per address, kept in the database (two handles on one database share it), and an unknown
user costs as much argon2 time as a known one."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.auth import throttle
from conveyor.auth.users import add_user, check_password
from conveyor.errors import Unauthorized
from conveyor.store.db import Database

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def test_the_backoff_doubles_after_the_free_failures_and_is_capped() -> None:
    waits = [throttle.USER.backoff(n).total_seconds() for n in range(1, 18)]
    assert waits[:5] == [0, 0, 0, 0, 0]
    assert waits[5:12] == [1, 2, 4, 8, 16, 32, 64]
    assert waits[-1] == 900 and throttle.USER.backoff(10_000) == timedelta(minutes=15)
    assert throttle.ADDRESS.backoff(20) == timedelta(0) and throttle.ADDRESS.backoff(21) == timedelta(seconds=1)


def test_a_user_is_locked_after_five_failures_and_the_lock_is_shared(db: Database, database_url: str) -> None:
    keys = throttle.keys("Bob ", "10.0.0.7")
    assert [k for k, _ in keys] == ["user:bob", "ip:10.0.0.7"]
    for i in range(5):
        with db.begin() as conn:
            assert throttle.retry_after(conn, keys, NOW) is None
            assert throttle.record_failure(conn, keys, NOW + timedelta(seconds=i)) is None
    with db.begin() as conn:
        until = throttle.record_failure(conn, keys, NOW + timedelta(seconds=5))
    assert until == NOW + timedelta(seconds=6)
    other = Database(database_url)  # another server on the same database sees the same lock
    try:
        with other.read() as conn:
            assert throttle.retry_after(conn, throttle.keys("bob", "10.9.9.9"), NOW + timedelta(seconds=5)) == (
                timedelta(seconds=1)
            )
            assert throttle.retry_after(conn, throttle.keys("carol", "10.9.9.9"), NOW + timedelta(seconds=5)) is None
            assert throttle.retry_after(conn, keys, NOW + timedelta(seconds=6)) is None
    finally:
        other.dispose()
    with db.begin() as conn:  # the 7th failure doubles it
        assert throttle.record_failure(conn, keys, NOW + timedelta(seconds=7)) == NOW + timedelta(seconds=9)
        throttle.record_success(conn, "bob")
        assert throttle.retry_after(conn, throttle.keys("bob", None), NOW + timedelta(seconds=8)) is None
        # the address keeps its count: 7 failures, 13 more are free
        assert throttle.retry_after(conn, throttle.keys("x", "10.0.0.7"), NOW + timedelta(seconds=8)) is None


def test_one_address_guessing_many_names_is_locked(db: Database) -> None:
    for i in range(20):
        with db.begin() as conn:
            assert throttle.record_failure(conn, throttle.keys(f"user{i}", "10.0.0.7"), NOW) is None
    with db.begin() as conn:
        assert throttle.record_failure(conn, throttle.keys("user20", "10.0.0.7"), NOW) == NOW + timedelta(seconds=1)
        assert throttle.retry_after(conn, throttle.keys("someone-new", "10.0.0.7"), NOW) == timedelta(seconds=1)
        assert throttle.retry_after(conn, throttle.keys("someone-new", "10.0.0.8"), NOW) is None


def test_old_failures_are_forgotten(db: Database) -> None:
    keys = throttle.keys("bob", None)
    for _ in range(8):
        with db.begin() as conn:
            throttle.record_failure(conn, keys, NOW)
    later = NOW + throttle.USER.forget + timedelta(minutes=16)
    with db.begin() as conn:
        assert throttle.retry_after(conn, keys, later) is None
        assert throttle.record_failure(conn, keys, later) is None  # counted from 1 again


def _median_seconds(db: Database, name: str, tries: int = 5) -> float:
    times = []
    for _ in range(tries):
        with db.read() as conn:
            started = time.perf_counter()
            with pytest.raises(Unauthorized, match="unknown user or wrong password"):
                check_password(conn, name, "a wrong password")
            times.append(time.perf_counter() - started)
    return statistics.median(times)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("production_argon2")
def test_unknown_disabled_and_passwordless_users_take_as_long_as_known_ones(db: Database) -> None:
    from sqlalchemy import update

    from conveyor.store.tables import users

    with db.begin() as conn:
        add_user(conn, "bob", ["engineer"], NOW, "bob's real password")
        add_user(conn, "gone", ["engineer"], NOW, "gone's real password")
        add_user(conn, "ci-bot", ["engineer"], NOW)
        conn.execute(update(users).where(users.c.name == "gone").values(disabled=True))
    check_password_warm = _median_seconds(db, "nobody", 1)  # the dummy hash is made once
    assert check_password_warm > 0
    known = _median_seconds(db, "bob")
    for name in ("nobody", "gone", "ci-bot"):
        other = _median_seconds(db, name)
        # before the fix an unknown name answered ~60x faster (10 ms against 688 ms)
        assert other > known * 0.5, (name, other, known)
