"""Start a deployment the moment it is enqueued, not at the queue's next poll.

DBOS polls its queues every ``polling_interval_sec``; between polls its queue threads sleep in
``wait(timeout)`` on the queue manager's stop event. ``install`` wraps that event so that ``poke``
ends the sleep at once: the worker then polls, with DBOS's own transactional claim (partition
concurrency and request order included), so a poke never starts anything a poll would not. A poke
that comes while a thread is polling, or before a queue's thread has started, is not lost: its next
(or first) wait returns at once and it polls.

Checked against dbos 3.4 (pinned below 4): the queue manager is the background thread whose target
is ``dbos._queue.queue_thread``, with its stop event as first argument. Where that is not found
(another DBOS), ``install`` returns False and deployments start at the next poll, as before.
"""

from __future__ import annotations

import threading
import time
from typing import Any

_waker: _Wakeable | None = None


class _Wakeable:
    """The queue manager's stop event, with a wait that a poke also ends."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event
        self._cond = threading.Condition()
        self._pokes = 0
        self._seen = threading.local()  # the pokes each waiting thread has already answered
        self._set = event.set
        event.wait = self.wait  # type: ignore[method-assign]
        event.set = self.set  # type: ignore[method-assign]

    def wait(self, timeout: float | None = None) -> bool:
        with self._cond:
            # a thread's first wait answers every poke so far: it may have started after them
            seen = getattr(self._seen, "pokes", 0)
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._event.is_set() and self._pokes == seen:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left)
            self._seen.pokes = self._pokes
        return self._event.is_set()

    def set(self) -> None:
        self._set()
        with self._cond:
            self._cond.notify_all()

    def poke(self) -> None:
        with self._cond:
            self._pokes += 1
            self._cond.notify_all()


def install(dbos: Any) -> bool:
    """Wrap the queue manager's stop event of a launched DBOS; False when it is not found."""
    global _waker
    from dbos._queue import queue_thread

    for thread in getattr(dbos, "_background_threads", []):
        args = getattr(thread, "_args", ())
        if getattr(thread, "_target", None) is queue_thread and args and isinstance(args[0], threading.Event):
            _waker = _Wakeable(args[0])
            return True
    _waker = None
    return False


def poke() -> None:
    """Ask the queue threads to poll now (a no-op without ``install``)."""
    if _waker is not None:
        _waker.poke()
