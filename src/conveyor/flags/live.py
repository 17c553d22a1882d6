"""The server's flag serving parts, one set per app: the compiled-ruleset cache and the stream hub.
Both are derived from the database; a restart rebuilds them on first use.

``fresh`` is the hot path of OFREP: the scope's snapshot without touching the database, or None.
A snapshot stays fresh until a change in this process calls ``notify`` (every flag change does,
after its commit) or for ``ttl`` seconds, after which the stored version is read again: so another
server sharing the database is seen within ``ttl``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from conveyor.flags.ruleset import RulesetCache, Scope, Snapshot
from conveyor.flags.stream import Hub
from conveyor.runtime import Runtime

_lock = threading.Lock()
FRESH_SECONDS = 1.0


class Live:
    def __init__(self, rt: Runtime, ttl: float = FRESH_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.rt = rt
        self.cache = RulesetCache()
        self.hub = Hub(self.snapshot)
        self.ttl, self._clock = ttl, clock
        self._lock = threading.Lock()
        self._fresh: dict[Scope, tuple[Snapshot, float]] = {}
        self._generation = 0
        self.served: dict[tuple[Scope, int], Any] = {}  # per-snapshot data of the OFREP routes (api/ofrep.py)
        self.scopes: dict[int, Scope] = {}  # SDK key id -> its scope, for the same routes

    def snapshot(self, scope: Scope) -> Snapshot:
        """The scope's current ruleset (blocking: call from a worker thread)."""
        with self._lock:
            generation, started = self._generation, self._clock()
        with self.rt.db.read() as conn:
            snapshot = self.cache.get(conn, scope)
        with self._lock:
            if generation == self._generation:  # no change was notified while this was read
                self._fresh[scope] = (snapshot, started)
        return snapshot

    def fresh(self, scope: Scope) -> Snapshot | None:
        """The scope's snapshot if it is known to be current, else None (then call ``snapshot``)."""
        found = self._fresh.get(scope)
        if found is None or self._clock() - found[1] > self.ttl:
            return None
        return found[0]

    def notify(self, scopes: list[Scope]) -> None:
        with self._lock:
            self._generation += 1
            self._fresh.clear()  # every scope: cheap, and no scope can be missed
        self.hub.changed(scopes)


def live_of(state: Any, rt: Runtime) -> Live:
    """The app's Live, made on first use (``state`` is the app's ``app.state``)."""
    with _lock:
        live = getattr(state, "conveyor_flags", None)
        if live is None:
            live = Live(rt)
            state.conveyor_flags = live
        assert isinstance(live, Live)
        return live
