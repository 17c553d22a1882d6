"""The audit chain's hashing: each entry's hash over its content and the hash before it (an HMAC
under the audit key when there is one). Shared by the log (``audit/log.py``) and the key's
binding (``audit/keys.py``), which must tell whether the newest entry was written with a key."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from conveyor.domain.clock import as_utc
from conveyor.store.tables import audit_log

GENESIS = "0" * 64


def entry_hash(
    prev_hash: str, at: datetime, actor: str, action: str, subject: str, details: Any, key: bytes | None = None
) -> str:
    """SHA-256 of the entry's canonical JSON; HMAC-SHA256 under ``key`` when there is one."""
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
    ).encode()
    if key is None:
        return hashlib.sha256(body).hexdigest()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def body_of(row: Any) -> tuple[datetime, str, str, str, Any]:
    return row.at, row.actor, row.action, row.subject, row.details


def newest_is_keyed(conn: Connection) -> bool:
    """True when the newest entry is not a plain SHA-256 entry (it was written with a key)."""
    row = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(1)).first()
    return row is not None and row.hash != entry_hash(row.prev_hash, *body_of(row))
