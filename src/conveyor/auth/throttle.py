"""Sign-in throttling with exponential backoff, per user name and per client address.

Each key (``user:NAME`` for the name that was typed, known or not, and ``ip:ADDRESS``) counts its
failed sign-ins. The first ``free`` failures cost nothing; after that every failure locks the key
for ``base * 2**(failures - free - 1)``, at most ``cap`` (1 s, 2 s, 4 s, ... 15 min). While a key
is locked, sign-ins with it are refused (HTTP 429 with Retry-After) before any password is
checked. A success clears the user key (never the address key: signing in to one's own account
must not reset a guessing budget), and failures older than ``forget`` are forgotten. The counters
live in the database, so every server sharing it enforces the same limits, and a restart does not reset them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from conveyor.store.tables import login_throttle


@dataclass(frozen=True)
class Policy:
    free: int
    base: timedelta
    cap: timedelta
    forget: timedelta

    def backoff(self, failures: int) -> timedelta:
        """How long the key is locked after its ``failures``-th failure in a row."""
        if failures <= self.free:
            return timedelta(0)
        wait: timedelta = self.base * 2 ** min(failures - self.free - 1, 30)
        return min(wait, self.cap)


USER = Policy(free=5, base=timedelta(seconds=1), cap=timedelta(minutes=15), forget=timedelta(hours=1))
ADDRESS = Policy(free=20, base=timedelta(seconds=1), cap=timedelta(minutes=15), forget=timedelta(hours=1))


def keys(name: str, client: str | None) -> list[tuple[str, Policy]]:
    """The throttling keys of one sign-in attempt."""
    out = [(f"user:{name.strip().lower()[:64]}", USER)]
    if client:
        out.append((f"ip:{client[:64]}", ADDRESS))
    return out


def _aware(value: datetime, now: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=now.tzinfo)


def retry_after(conn: Connection, attempt: list[tuple[str, Policy]], now: datetime) -> timedelta | None:
    """How long until an attempt with these keys may be made; None when it may be made now."""
    names = [k for k, _ in attempt]
    rows = conn.execute(select(login_throttle.c.locked_until).where(login_throttle.c.key.in_(names)))
    waits = [_aware(r.locked_until, now) - now for r in rows if r.locked_until is not None]
    longest = max(waits, default=timedelta(0))
    return longest if longest > timedelta(0) else None


def record_failure(conn: Connection, attempt: list[tuple[str, Policy]], now: datetime) -> datetime | None:
    """Count one failure on every key; return when the longest resulting lock ends (None: no lock)."""
    until: datetime | None = None
    for key, policy in attempt:
        failures = _count(conn, key, policy, now)
        wait = policy.backoff(failures)
        if wait > timedelta(0):
            locked = now + wait
            conn.execute(update(login_throttle).where(login_throttle.c.key == key).values(locked_until=locked))
            until = locked if until is None else max(until, locked)
    return until


def _count(conn: Connection, key: str, policy: Policy, now: datetime) -> int:
    """Add one failure to ``key`` atomically (an upsert, so concurrent servers never lose one)."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    table = login_throttle
    stmt = insert(table).values(key=key, failures=1, last_failure_at=now, locked_until=None)
    upsert = stmt.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={
            "failures": case((table.c.last_failure_at < now - policy.forget, 1), else_=table.c.failures + 1),
            "last_failure_at": now,
        },
    ).returning(table.c.failures)
    return int(conn.execute(upsert).scalar_one())


def record_success(conn: Connection, name: str) -> None:
    """A correct password clears the user's count (the address keeps its own)."""
    conn.execute(delete(login_throttle).where(login_throttle.c.key == keys(name, None)[0][0]))
