"""Append-only audit log. Each entry carries the hash of the one before it, so an edited or
deleted row breaks the chain at a place ``verify`` names."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from conveyor.domain.clock import as_utc
from conveyor.store.db import serialize
from conveyor.store.tables import audit_log

GENESIS = "0" * 64


def entry_hash(prev_hash: str, at: datetime, actor: str, action: str, subject: str, details: Any) -> str:
    body = json.dumps(
        {
            "prev": prev_hash,
            "at": as_utc(at).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def append(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
) -> int:
    """Add one entry in the caller's transaction and return its id."""
    at = as_utc(at)  # stored as hashed: SQLite keeps no offset
    serialize(conn, "audit")  # one writer at a time extends the chain
    prev = conn.execute(select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)).scalar()
    prev_hash = prev or GENESIS
    clean = json.loads(json.dumps(details or {}, default=str))
    digest = entry_hash(prev_hash, at, actor, action, subject, clean)
    result = conn.execute(
        audit_log.insert().values(
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            details=clean,
            prev_hash=prev_hash,
            hash=digest,
        )
    )
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    entries: int
    bad_entry: int | None = None
    problem: str | None = None


def verify(conn: Connection) -> ChainCheck:
    """Walk the chain from the first entry; report the first entry that does not check out."""
    prev_hash = GENESIS
    count = 0
    rows = conn.execute(select(audit_log).order_by(audit_log.c.id))
    for row in rows:
        count += 1
        if row.prev_hash != prev_hash:
            return ChainCheck(False, count, row.id, "its prev_hash does not match the entry before it")
        expected = entry_hash(prev_hash, row.at, row.actor, row.action, row.subject, row.details)
        if row.hash != expected:
            return ChainCheck(False, count, row.id, "its content does not match its hash (edited)")
        prev_hash = row.hash
    return ChainCheck(True, count)


def recent(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, newest first, as JSON-ready mappings."""
    rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit))
    return [
        {
            "id": r.id,
            "at": r.at.isoformat(),
            "actor": r.actor,
            "action": r.action,
            "subject": r.subject,
            "details": r.details,
            "hash": r.hash,
        }
        for r in rows
    ]
