"""The server's flag serving parts, one set per app: the compiled-ruleset cache and the stream hub.
Both are derived from the database; a restart rebuilds them on first use."""

from __future__ import annotations

import threading
from typing import Any

from conveyor.engine.runtime import Runtime
from conveyor.flags.ruleset import RulesetCache, Scope, Snapshot
from conveyor.flags.stream import Hub

_lock = threading.Lock()


class Live:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.cache = RulesetCache()
        self.hub = Hub(self.snapshot)

    def snapshot(self, scope: Scope) -> Snapshot:
        """The scope's current ruleset (blocking: call from a worker thread)."""
        with self.rt.db.read() as conn:
            return self.cache.get(conn, scope)

    def notify(self, scopes: list[Scope]) -> None:
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
