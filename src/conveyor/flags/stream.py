"""Server-sent events of ruleset changes, per service environment.

A change commits in a worker thread, which then calls ``Hub.changed``: if anyone listens to that
environment, the new ruleset is loaded once and handed to every subscriber's event loop with
``call_soon_threadsafe``, before the API call that made the change returns. A watcher per listened
environment also compares the stored version once a second, so a change another process made
arrives too. Subscribers keep only the newest ruleset: a slow client skips versions, never
falls behind, and never gets an older ruleset after a newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from conveyor.flags.ruleset import Scope, Snapshot

log = logging.getLogger("conveyor.flags.stream")

KEEPALIVE_SECONDS = 15.0
POLL_SECONDS = 1.0


class Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()
        self.latest: Snapshot | None = None

    def offer(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` if it is newer than what is waiting (call on the subscriber's loop)."""
        if self.latest is None or snapshot.version > self.latest.version:
            self.latest = snapshot
            self.event.set()


class Hub:
    """Who listens to which environment. ``load`` reads a scope's current snapshot (blocking)."""

    def __init__(self, load: Callable[[Scope], Snapshot], poll_seconds: float = POLL_SECONDS) -> None:
        self._load = load
        self._poll = poll_seconds
        self._lock = threading.Lock()
        self._subscribers: dict[Scope, set[Subscriber]] = {}
        self._watchers: dict[Scope, asyncio.Task[None]] = {}

    def load(self, scope: Scope) -> Snapshot:
        return self._load(scope)

    def listeners(self, scope: Scope) -> int:
        with self._lock:
            return len(self._subscribers.get(scope, ()))

    def changed(self, scopes: list[Scope]) -> None:
        """Push the new rulesets of ``scopes`` to their subscribers. Call after the commit, from
        any thread but an event loop's (it reads the database)."""
        for scope in scopes:
            with self._lock:
                subscribers = list(self._subscribers.get(scope, ()))
            if not subscribers:
                continue
            try:
                snapshot = self._load(scope)
            except Exception:  # the watcher will deliver it; the change itself is committed
                log.exception("could not load the ruleset of %s/%s", scope.service, scope.environment)
                continue
            for sub in subscribers:
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody listens there
                    sub.loop.call_soon_threadsafe(sub.offer, snapshot)

    @asynccontextmanager
    async def subscribe(self, scope: Scope) -> AsyncIterator[Subscriber]:
        sub = Subscriber(asyncio.get_running_loop())
        with self._lock:
            self._subscribers.setdefault(scope, set()).add(sub)
            watcher = self._watchers.get(scope)
            if watcher is None or watcher.done():
                self._watchers[scope] = asyncio.create_task(self._watch(scope))
        try:
            yield sub
        finally:
            with self._lock:
                remaining = self._subscribers.get(scope, set())
                remaining.discard(sub)
                if not remaining:
                    self._subscribers.pop(scope, None)
                    task = self._watchers.pop(scope, None)
                    if task is not None:
                        task.cancel()

    async def _watch(self, scope: Scope) -> None:
        while True:
            await asyncio.sleep(self._poll)
            try:
                snapshot = await asyncio.to_thread(self._load, scope)
            except Exception:
                log.exception("could not check the ruleset version of %s/%s", scope.service, scope.environment)
                continue
            with self._lock:
                subscribers = list(self._subscribers.get(scope, ()))
            for sub in subscribers:
                sub.offer(snapshot)


def event(snapshot: Snapshot) -> str:
    return f"event: ruleset\nid: {snapshot.version}\ndata: {snapshot.text}\n\n"


async def events(
    hub: Hub,
    scope: Scope,
    first: Snapshot,
    still_allowed: Callable[[], Awaitable[bool]],
    keepalive: float = KEEPALIVE_SECONDS,
) -> AsyncIterator[str]:
    """The stream: the current ruleset at once, then each newer one, ``: keepalive`` comments in
    between. ``still_allowed`` is asked at every keepalive; when the key was revoked the stream ends."""
    async with hub.subscribe(scope) as sub:
        sub.offer(first)
        # a change that committed between ``first`` and subscribing is in this reload
        sub.offer(await asyncio.to_thread(hub.load, scope))
        sent = -1
        while True:
            try:
                await asyncio.wait_for(sub.event.wait(), timeout=keepalive)
            except TimeoutError:
                if not await still_allowed():
                    return
                yield ": keepalive\n\n"
                continue
            sub.event.clear()
            latest = sub.latest
            if latest is not None and latest.version > sent:
                sent = latest.version
                yield event(latest)
