"""The audit chain's secret key and its external anchor, both kept outside the database.

- The key (``CONVEYOR_AUDIT_KEY``, else ``HOME/audit.key``, 32 random bytes created 0600 on first
  start) makes every entry's hash an HMAC: someone who can write the database but not read the key
  cannot recompute the chain after editing, deleting or inserting an entry.
- The anchor (``HOME/audit.head``, 0600) records the newest entry this process committed, its id
  and its hash, after the commit. Deleting the newest entries leaves a chain that is intact as far
  as it goes; the anchor is what shows that entries are missing at its end (truncation).

``bind`` attaches both to a ``Database``: ``audit.log.append`` and ``verify`` find them through
the connection's execution options, so no caller has to pass them around.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from conveyor.audit.chain import newest_is_keyed
from conveyor.errors import InvalidInput
from conveyor.settings import Settings
from conveyor.store.db import Database, private_dir

KEY_FILE = "audit.key"
ANCHOR_FILE = "audit.head"
OPTION = "conveyor_audit"  # the execution option that carries the binding


@dataclass(frozen=True)
class Head:
    """One entry of the chain, as the anchor names it."""

    id: int
    hash: str


class Anchor:
    """The anchor file: written atomically (a temporary file renamed over it), and only forward,
    so concurrent transactions of one process never move it back to an older entry."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def read(self) -> Head | None:
        try:
            data = json.loads(self.path.read_text())
            return Head(int(data["id"]), str(data["hash"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(
                f"the audit anchor {self.path} is not readable ({exc})",
                fix="compare it with the head `conveyor audit verify` printed earlier; delete it to start a new anchor",
            ) from exc

    def advance(self, head: Head) -> None:
        with self._lock:
            current = self.read()
            if current is not None and current.id >= head.id:
                return
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump({"id": head.id, "hash": head.hash}, out)
            os.replace(tmp, self.path)


@dataclass(frozen=True)
class Binding:
    key: bytes
    anchor: Anchor | None
    key_source: str


def binding_of(conn: Connection) -> Binding | None:
    found: Any = conn.get_execution_options().get(OPTION)
    return found if isinstance(found, Binding) else None


def load_key(settings: Settings, create: bool) -> tuple[bytes | None, str]:
    """The key and where it came from; ``create`` makes HOME/audit.key when there is none."""
    if settings.audit_key:
        if len(settings.audit_key) < 16:
            raise InvalidInput(
                f"CONVEYOR_AUDIT_KEY is {len(settings.audit_key)} characters long",
                fix="use at least 16 random characters, e.g. `openssl rand -hex 32`",
            )
        return settings.audit_key.encode(), "CONVEYOR_AUDIT_KEY"
    path = settings.home.resolve() / KEY_FILE
    if not path.exists():
        if not create:
            return None, str(path)
        private_dir(path.parent)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
        except FileExistsError:
            pass  # another process made it first: use theirs
    if path.stat().st_mode & 0o077 and path.stat().st_uid == os.geteuid():
        path.chmod(0o600)
    text = path.read_text().strip()
    if len(text) < 16:
        raise InvalidInput(f"the audit key {path} is empty or too short", fix="restore it from your backup")
    return text.encode(), str(path)


def bind(db: Database, settings: Settings, create: bool = True) -> Binding | None:
    """Attach the key (made if missing and ``create``) and the anchor to ``db``. Without a key (a
    read-only check on a host without it) nothing is bound and keyed entries cannot be verified.
    Refuses to make a new key for a log whose newest entry was written with a key: that would fork
    the chain onto a key the old entries do not match."""
    key, source = load_key(settings, create=False)
    if key is None and create:
        with db.read() as conn:
            newest = newest_is_keyed(conn)
        if newest:
            raise InvalidInput(
                f"the audit log was written with an HMAC key, and {source} is missing",
                fix="restore the key file from a backup (or set CONVEYOR_AUDIT_KEY), or run with the server's "
                "CONVEYOR_HOME",
            )
        key, source = load_key(settings, create=True)
    if key is None:
        return None
    home = settings.home.resolve()
    private_dir(home)
    binding = Binding(key, Anchor(home / ANCHOR_FILE), source)
    db.engine.update_execution_options(**{OPTION: binding})
    return binding
