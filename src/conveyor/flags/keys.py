"""SDK keys: one service and one environment each, random, shown once, stored only as a SHA-256
hash (like API tokens). They read that environment's ruleset and evaluate its flags; nothing else."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from conveyor.domain.clock import as_utc
from conveyor.errors import Conflict, NotFound, Unauthorized
from conveyor.store.tables import sdk_keys, services

KEY_PREFIX = "cvf_"
USER_TOKEN_PREFIX = "cvy_"


@dataclass(frozen=True)
class SdkKey:
    id: int
    service_id: int
    service: str
    environment: str
    prefix: str
    name: str | None
    created_by: str
    created_at: datetime
    revoked_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "environment": self.environment,
            "prefix": self.prefix,
            "name": self.name,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "revoked": self.revoked_at is not None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    conn: Connection, service_id: int, environment: str, actor: str, now: datetime, name: str | None = None
) -> tuple[str, int]:
    """Make a key for the service's environment; return it (the only time it is seen) and its id."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    result = conn.execute(
        sdk_keys.insert().values(
            service_id=service_id,
            environment=environment,
            key_hash=hash_key(key),
            prefix=key[:12],
            name=name,
            created_by=actor,
            created_at=now,
        )
    )
    return key, int(result.inserted_primary_key[0])  # type: ignore[index]


_COLUMNS = (sdk_keys, services.c.name.label("service"))


def _of(row: Any) -> SdkKey:
    return SdkKey(
        row.id,
        row.service_id,
        row.service,
        row.environment,
        row.prefix,
        row.name,
        row.created_by,
        as_utc(row.created_at),
        as_utc(row.revoked_at) if row.revoked_at else None,
    )


def list_keys(conn: Connection, service_id: int | None = None, environment: str | None = None) -> list[SdkKey]:
    query = select(*_COLUMNS).join(services, services.c.id == sdk_keys.c.service_id)
    if service_id is not None:
        query = query.where(sdk_keys.c.service_id == service_id)
    if environment is not None:
        query = query.where(sdk_keys.c.environment == environment)
    return [_of(r) for r in conn.execute(query.order_by(sdk_keys.c.id))]


def get_key(conn: Connection, key_id: int) -> SdkKey:
    row = conn.execute(
        select(*_COLUMNS).join(services, services.c.id == sdk_keys.c.service_id).where(sdk_keys.c.id == key_id)
    ).first()
    if row is None:
        raise NotFound(f"no SDK key with id {key_id}", fix="list them with `conveyor flags key list`")
    return _of(row)


def revoke_key(conn: Connection, key_id: int, actor: str, now: datetime) -> SdkKey:
    found = get_key(conn, key_id)
    if found.revoked_at is not None:
        raise Conflict(f"SDK key {found.prefix}... (id {key_id}) is already revoked")
    conn.execute(update(sdk_keys).where(sdk_keys.c.id == key_id).values(revoked_at=now, revoked_by=actor))
    CACHE.revoked()  # again after the commit (flags/access.py): a request in between reads the old row
    return get_key(conn, key_id)


def authenticate_key(conn: Connection, key: str | None) -> SdkKey:
    """The live SDK key ``key`` is, or Unauthorized."""
    if not key:
        raise Unauthorized(
            "no SDK key was sent",
            fix="send `X-API-Key: KEY` or `Authorization: Bearer KEY` (`conveyor flags key create`)",
        )
    if key.startswith(USER_TOKEN_PREFIX):
        raise Unauthorized(
            "that is a user API token; flag evaluation takes an SDK key (cvf_...)",
            fix="create one with `conveyor flags key create --env ENV`",
        )
    row = conn.execute(
        select(*_COLUMNS)
        .join(services, services.c.id == sdk_keys.c.service_id)
        .where(sdk_keys.c.key_hash == hash_key(key), sdk_keys.c.revoked_at.is_(None))
    ).first()
    if row is None:
        raise Unauthorized(
            "the SDK key is not valid (unknown or revoked)", fix="create one with `conveyor flags key create`"
        )
    return _of(row)


def is_live(conn: Connection, key_id: int) -> bool:
    """The key exists and is not revoked (an open stream asks this now and then)."""
    row = conn.execute(select(sdk_keys.c.revoked_at).where(sdk_keys.c.id == key_id)).first()
    return row is not None and row.revoked_at is None


def key_from_headers(x_api_key: str | None, authorization: str | None) -> str | None:
    """OFREP's two ways to send a key: ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``."""
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return None


class KeyCache:
    """Live SDK keys by hash, in memory, so evaluation does no database work per request.

    ``revoked()`` drops every entry at once (revocation in this process: the next request asks the
    database again); an entry is also re-checked after ``ttl`` seconds, so a key revoked through
    another server sharing the database stops working here within that time. A fill that started
    before a revocation is not kept. Unknown keys are never cached (a new key works at once)."""

    def __init__(self, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self._clock = ttl, clock
        self._lock = threading.Lock()
        self._items: dict[str, tuple[SdkKey, float]] = {}  # by hash: what load() learned
        self._sent: dict[str, tuple[SdkKey, float]] = {}  # the same, by the key as sent: no SHA-256 per request
        self._generation = 0

    def get(self, key: str | None) -> SdkKey | None:
        """The cached live key, or None when the database must be asked (``load``)."""
        if not key:
            return None
        found = self._sent.get(key)
        if found is None:
            found = self._items.get(hash_key(key))
        if found is None or self._clock() - found[1] > self.ttl:
            return None
        return found[0]

    def load(self, conn: Connection, key: str | None) -> SdkKey:
        """``authenticate_key`` and remember the answer (blocking: call from a worker thread)."""
        with self._lock:
            generation, started = self._generation, self._clock()
        found = authenticate_key(conn, key)
        assert key is not None  # authenticate_key refused an empty key
        with self._lock:
            if generation == self._generation:
                if len(self._sent) >= 10_000:  # keys as sent, kept only while they are few
                    self._sent.clear()
                self._items[hash_key(key)] = self._sent[key] = (found, started)
        return found

    def revoked(self) -> None:
        with self._lock:
            self._generation += 1
            self._items.clear()
            self._sent.clear()


CACHE = KeyCache()  # the process's SDK keys: revoke_key below empties it
