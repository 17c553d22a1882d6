"""The SSE hub: a change pushed from another thread reaches every subscriber at once; a change only
the database knows arrives by the watcher; subscribers keep the newest; the stream format."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator

from conveyor.flags.evaluate import compile_ruleset
from conveyor.flags.ruleset import Scope, Snapshot
from conveyor.flags.stream import Hub, event, events

SCOPE = Scope(1, "shop", "production")


def snap(version: int) -> Snapshot:
    doc = {"environment": "production", "version": version, "flags": {}}
    return Snapshot(SCOPE, version, doc, json.dumps(doc, separators=(",", ":")), compile_ruleset(doc))


class Store:
    """What the database would say: the current version."""

    def __init__(self) -> None:
        self.version = 1
        self.loads = 0

    def load(self, scope: Scope) -> Snapshot:
        self.loads += 1
        return snap(self.version)


async def allowed() -> bool:
    return True


async def take(stream: AsyncIterator[str], timeout: float = 5) -> str:
    return await asyncio.wait_for(anext(stream), timeout)


def versions_of(frames: list[str]) -> list[int]:
    return [json.loads(f.split("data: ", 1)[1])["version"] for f in frames if f.startswith("event: ruleset")]


def test_event_format() -> None:
    frame = event(snap(4))
    assert frame == 'event: ruleset\nid: 4\ndata: {"environment":"production","version":4,"flags":{}}\n\n'


async def test_a_change_from_another_thread_reaches_every_subscriber() -> None:
    store = Store()
    hub = Hub(store.load, poll_seconds=60)
    streams = [events(hub, SCOPE, snap(1), allowed) for _ in range(20)]
    assert versions_of([await take(s) for s in streams]) == [1] * 20
    assert hub.listeners(SCOPE) == 20
    store.version = 2
    started = time.monotonic()
    threading.Thread(target=hub.changed, args=([SCOPE],)).start()
    frames = [await take(s) for s in streams]
    assert versions_of(frames) == [2] * 20 and time.monotonic() - started < 2
    for s in streams:
        await s.aclose()  # type: ignore[attr-defined]
    assert hub.listeners(SCOPE) == 0


async def test_changes_only_the_database_knows_arrive_by_the_watcher() -> None:
    store = Store()
    hub = Hub(store.load, poll_seconds=0.05)
    stream = events(hub, SCOPE, snap(1), allowed)
    assert versions_of([await take(stream)]) == [1]
    store.version = 5  # another process bumped it
    assert versions_of([await take(stream)]) == [5]
    await stream.aclose()  # type: ignore[attr-defined]


async def test_nobody_listening_loads_nothing() -> None:
    store = Store()
    hub = Hub(store.load)
    hub.changed([SCOPE])
    assert store.loads == 0


async def test_a_slow_subscriber_gets_the_newest_and_never_an_older_one() -> None:
    store = Store()
    hub = Hub(store.load, poll_seconds=60)
    stream = events(hub, SCOPE, snap(1), allowed)
    await take(stream)
    async with hub.subscribe(SCOPE) as sub:
        for v in (4, 3, 2):
            sub.offer(snap(v))
        assert sub.latest is not None and sub.latest.version == 4
    store.version = 3
    await asyncio.to_thread(hub.changed, [SCOPE])
    store.version = 2  # an older snapshot arriving late is dropped
    await asyncio.to_thread(hub.changed, [SCOPE])
    store.version = 4
    await asyncio.to_thread(hub.changed, [SCOPE])
    got = versions_of([await take(stream)])
    while got[-1] != 4:
        got += versions_of([await take(stream)])
    assert got == sorted(set(got)) and 2 not in got
    await stream.aclose()  # type: ignore[attr-defined]


async def test_keepalive_and_the_end_of_a_revoked_key() -> None:
    store = Store()
    hub = Hub(store.load, poll_seconds=60)
    answers = [True, False]

    async def still() -> bool:
        return answers.pop(0)

    stream = events(hub, SCOPE, snap(1), still, keepalive=0.05)
    assert versions_of([await take(stream)]) == [1]
    assert await take(stream) == ": keepalive\n\n"
    rest = [frame async for frame in stream]
    assert rest == [] and hub.listeners(SCOPE) == 0
