"""engine/queue_wake.py: a deployment starts when it is enqueued, not at the queue's next poll."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from tests.conftest import wait_until
from tests.e2e.harness import Server, make_service_repo

from conveyor import runtime
from conveyor.engine import queue_wake
from conveyor.engine.queue_wake import _Wakeable


def _waiter(event: threading.Event, timeout: float, out: list[tuple[bool, float]]) -> threading.Thread:
    def run() -> None:
        start = time.monotonic()
        out.append((event.wait(timeout), time.monotonic() - start))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_poke_ends_the_wait_without_stopping() -> None:
    event = threading.Event()
    waker = _Wakeable(event)
    out: list[tuple[bool, float]] = []
    thread = _waiter(event, 30, out)
    wait_until(lambda: waker._cond._waiters, timeout=5, what="the thread waits")  # type: ignore[attr-defined]
    waker.poke()
    thread.join(5)
    [(stopped, took)] = out
    assert stopped is False and took < 5


def test_a_poke_while_nobody_waits_is_not_lost() -> None:
    """A queue thread that is polling when the poke comes polls again at once."""
    event = threading.Event()
    waker = _Wakeable(event)
    assert event.wait(0.01) is False  # this thread has waited once: it has seen every poke so far
    waker.poke()  # it is "polling" now
    start = time.monotonic()
    assert event.wait(30) is False
    assert time.monotonic() - start < 5
    start = time.monotonic()
    assert event.wait(0.2) is False  # answered: the next wait sleeps its whole timeout
    assert time.monotonic() - start >= 0.2


def test_a_thread_that_starts_after_a_poke_polls_at_its_first_wait() -> None:
    """The queue's own thread may start after the first deployment was enqueued and poked."""
    event = threading.Event()
    waker = _Wakeable(event)
    waker.poke()
    out: list[tuple[bool, float]] = []
    thread = _waiter(event, 30, out)
    thread.join(5)
    assert out and out[0][0] is False and out[0][1] < 5


def test_set_still_stops_every_waiter_and_a_timeout_still_times_out() -> None:
    event = threading.Event()
    _Wakeable(event)
    assert event.wait(0.05) is False
    out: list[tuple[bool, float]] = []
    thread = _waiter(event, 30, out)
    time.sleep(0)  # let it start waiting; set() below wakes it whenever it got there
    event.set()
    thread.join(5)
    assert out and out[0][0] is True
    assert event.wait(30) is True  # set stays set


def test_a_deployment_starts_long_before_the_next_poll(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a queue poll of 60 s, a requested deployment still starts and finishes at once."""
    real_launch = runtime.launch
    monkeypatch.setattr(runtime, "launch", lambda rt, **_: real_launch(rt, queue_poll_seconds=60.0))
    repo = make_service_repo(tmp_path / "shop", tmp_path / "effects")
    server = Server(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'c.db'}", poll_interval=0)
    server.start()
    try:
        assert queue_wake._waker is not None, "the queue manager's event was not found in this DBOS"
        server.ok("POST", "/services", json={"source": str(repo)})
        started = time.monotonic()
        # production: no auto-deploy ahead of it in its queue
        d = server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
        done = server.wait_finished(d["id"], timeout=50)
        assert done["state"] == "succeeded", done["reason"]
        assert time.monotonic() - started < 30  # a poll would have come after 60 s
    finally:
        server.stop()


def test_a_deployment_queued_behind_another_starts_when_that_one_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a queue poll of 60 s, the second of two deployments to one environment starts as soon
    as the first has ended: the end of a workflow wakes the queue too."""
    real_launch = runtime.launch
    monkeypatch.setattr(runtime, "launch", lambda rt, **_: real_launch(rt, queue_poll_seconds=60.0))
    repo = make_service_repo(tmp_path / "shop", tmp_path / "effects")
    server = Server(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'c.db'}", poll_interval=0)
    server.start()
    try:
        server.ok("POST", "/services", json={"source": str(repo)})
        started = time.monotonic()
        first = server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
        second = server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
        a = server.wait_finished(first["id"], timeout=50)
        b = server.wait_finished(second["id"], timeout=50)
        assert a["state"] == b["state"] == "succeeded", (a["reason"], b["reason"])
        assert a["finished_at"] <= b["started_at"]  # one at a time in an environment, still
        assert time.monotonic() - started < 30  # a poll would have come after 60 s
    finally:
        server.stop()
