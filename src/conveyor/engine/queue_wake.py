"""Start a deployment the moment it is enqueued, not at the queue's next poll.

DBOS polls its queues every ``polling_interval_sec``; between polls its queue threads sleep in
``wait(timeout)`` on the queue manager's stop event. ``install`` wraps that event so that ``poke``
ends the sleep at once: the worker then polls, with DBOS's own transactional claim (partition
concurrency and request order included), so a poke never starts anything a poll would not. A poke
that comes while a thread is polling, or before a queue's thread has started, is not lost: its next
(or first) wait returns at once and it polls.

A workflow that ends also pokes: the next deployment queued behind it in the same environment
starts at once, not at the next poll. The poke comes once DBOS has recorded the workflow's outcome
(a poll before that would still see the partition busy): DBOS ends every execution of a workflow in
this process by releasing its entry in the set of active workflows (``_active_workflows_set``),
after it wrote the outcome, in a ``finally`` (recovered workflows included).

Checked against dbos 3.4 (pinned below 4): the queue manager is the background thread whose target
is ``dbos._queue.queue_thread``, with its stop event as first argument, and the active set's
``_remove`` is what the release calls. Where either is not found (another DBOS), ``install``
returns False, and the queue must then be polled often (``runtime.launch`` does so).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

_waker: _Wakeable | None = None


class _Wakeable:
    """The queue manager's stop event, with a wait that a poke also ends: in the threads that
    ``answers`` (default: every thread); the others (DBOS's own queues, the manager) keep their
    rhythm, so a poke costs one poll of the deployment queue only."""

    def __init__(self, event: threading.Event, answers: Callable[[threading.Thread], bool] | None = None) -> None:
        self._event = event
        self._answers = answers or (lambda _thread: True)
        self._cond = threading.Condition()
        self._pokes = 0
        self._seen = threading.local()  # the pokes each waiting thread has already answered
        self._set = event.set
        self._plain_wait = event.wait  # the event's own: set() still ends it
        event.wait = self.wait  # type: ignore[method-assign]
        event.set = self.set  # type: ignore[method-assign]

    def wait(self, timeout: float | None = None) -> bool:
        if not self._answers(threading.current_thread()):
            return self._plain_wait(timeout)
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


def install(dbos: Any, queue: str) -> bool:
    """Wrap the queue manager's stop event of a launched DBOS, so that pokes wake ``queue``'s
    worker thread, and poke when a workflow ends; False when either is not found (then nothing
    is wrapped)."""
    global _waker
    from dbos._queue import queue_thread

    _waker = None
    active = getattr(dbos, "_active_workflows_set", None)
    remove = getattr(active, "_remove", None)
    if not callable(remove):
        return False
    worker = f"queue-worker-{queue}"  # the name dbos._queue gives each queue's thread
    for thread in getattr(dbos, "_background_threads", []):
        args = getattr(thread, "_args", ())
        if getattr(thread, "_target", None) is queue_thread and args and isinstance(args[0], threading.Event):
            _waker = _Wakeable(args[0], lambda thread: thread.name == worker)
            setattr(active, "_remove", _poking_after(remove))  # noqa: B010 (a private attribute of DBOS)
            return True
    return False


def _poking_after(remove: Any) -> Any:
    """The active set's ``_remove``, followed by a poke: the workflow's outcome is recorded by then."""

    def removed(*args: Any, **kwargs: Any) -> None:
        try:
            remove(*args, **kwargs)
        finally:
            poke()

    return removed


def poke() -> None:
    """Ask the queue threads to poll now (a no-op without ``install``)."""
    if _waker is not None:
        _waker.poke()
