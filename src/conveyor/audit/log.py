"""Append-only audit log. Each entry carries the hash of the one before it, so an edited or
deleted row breaks the chain at a place ``verify`` names. With a key bound (``audit/keys.py``:
the server and the CLI always bind one) each hash is an HMAC-SHA256 under that key, so nobody
without the key can rebuild the chain after changing it; and every commit moves the anchor file
forward, so deleting the newest entries (which leaves an intact but shorter chain) is found too.
Entries written before the key existed are plain SHA-256; they are accepted only as a prefix of
the chain, never after a keyed entry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from conveyor.audit.chain import GENESIS, body_of, entry_hash
from conveyor.audit.keys import Head, binding_of
from conveyor.domain.clock import as_utc
from conveyor.domain.events import Event, from_audit
from conveyor.store import events
from conveyor.store.db import AFTER_COMMIT, serialize
from conveyor.store.tables import audit_log


def append(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
    event: Event | None = None,
) -> int:
    """Add one entry in the caller's transaction and return its id. The entry's domain event
    (``event``, or the one its action stands for: ``domain/events.py``) joins the event stream in
    the same transaction."""
    at = as_utc(at)  # stored as hashed: SQLite keeps no offset
    serialize(conn, "audit")  # one writer at a time extends the chain
    prev = conn.execute(select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)).scalar()
    prev_hash = prev or GENESIS
    clean = json.loads(json.dumps(details or {}, default=str))
    binding = binding_of(conn)
    digest = entry_hash(prev_hash, at, actor, action, subject, clean, binding.key if binding else None)
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
    entry_id = int(key[0]) if key else 0
    if binding is not None and binding.anchor is not None:
        anchor, head = binding.anchor, Head(entry_id, digest)
        conn.info.setdefault(AFTER_COMMIT, []).append(lambda: anchor.advance(head))
    event = event or from_audit(action, actor, subject, clean)
    if event is not None:
        events.record(conn, event, at)
    return entry_id


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    entries: int
    bad_entry: int | None = None
    problem: str | None = None
    head: Head | None = None  # the newest entry walked
    unkeyed: int = 0  # entries from before the key existed (plain SHA-256, only as a prefix)
    anchor: Head | None = None  # what the anchor file recorded, if there is one

    def as_json(self) -> dict[str, Any]:
        def head(h: Head | None) -> dict[str, Any] | None:
            return {"id": h.id, "hash": h.hash} if h else None

        return {
            "ok": self.ok,
            "entries": self.entries,
            "bad_entry": self.bad_entry,
            "problem": self.problem,
            "head": head(self.head),
            "unkeyed": self.unkeyed,
            "anchor": head(self.anchor),
        }


def verify(conn: Connection, expect: str | None = None) -> ChainCheck:
    """Walk the chain from the first entry; report the first entry that does not check out.

    Each entry must name the hash of the one before it (a deleted or inserted entry breaks this)
    and its hash must be the HMAC of its content under the bound key (an edit breaks this, and
    nobody without the key can repair it). Then the end of the chain must reach the anchor file's
    entry, and ``expect`` (a head hash kept elsewhere) must be in the chain: otherwise the newest
    entries were deleted."""
    binding = binding_of(conn)
    key = binding.key if binding else None
    anchor = binding.anchor.read() if binding and binding.anchor else None
    prev_hash, count, unkeyed, keyed_seen, head = GENESIS, 0, 0, False, None
    seen_expected = expect is None
    anchor_found = anchor is None

    def broken(row_id: int | None, problem: str) -> ChainCheck:
        return ChainCheck(False, count, row_id, problem, head, unkeyed, anchor)

    for row in conn.execute(select(audit_log).order_by(audit_log.c.id)):
        count += 1
        if row.prev_hash != prev_hash:
            return broken(row.id, "its prev_hash does not match the entry before it (an entry was deleted or inserted)")
        if key is not None and row.hash == entry_hash(prev_hash, *body_of(row), key=key):
            keyed_seen = True
        elif not keyed_seen and row.hash == entry_hash(prev_hash, *body_of(row)):
            unkeyed += 1
        else:
            return broken(row.id, "its content does not match its hash (edited, or rehashed without the audit key)")
        if anchor is not None and row.id == anchor.id:
            if row.hash != anchor.hash:
                return broken(row.id, "it is not the entry the anchor file recorded (the log was rewritten)")
            anchor_found = True
        seen_expected = seen_expected or row.hash == expect
        prev_hash, head = row.hash, Head(row.id, row.hash)
    if not anchor_found and anchor is not None:
        last = f"entry {head.id}" if head else "no entry"
        return broken(
            anchor.id,
            f"the log ends at {last} but the anchor file recorded entry {anchor.id} ({anchor.hash[:12]}): "
            "the newest entries were deleted",
        )
    if not seen_expected:
        return broken(None, f"the head {expect} is not in the log: entries up to it were deleted or rewritten")
    return ChainCheck(True, count, None, None, head, unkeyed, anchor)


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
