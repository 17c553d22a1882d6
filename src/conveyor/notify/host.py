"""The sender, hosted by the server (``app.py`` starts it with the engine): one background thread
that follows the event stream (``plan``), and hands each destination's oldest due delivery to a
short-lived worker thread, one in flight per destination. A failed attempt waits
``notify_retry_base`` seconds, doubling up to ``notify_retry_max`` (or what the receiver asked for
with Retry-After), until ``notify_give_up`` seconds after the message was made.

Nothing here runs inside a deployment's workflow or holds a database transaction while talking to
Slack, GitHub or a mail server: a slow or dead receiver delays only its own messages."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from jinja2 import TemplateError

from conveyor.notify import plan
from conveyor.notify.base import Delivery, Message, Refused, Retry, notifier
from conveyor.notify.render import message_for
from conveyor.runtime import Runtime
from conveyor.store import events as stream
from conveyor.store import notifications as outbox
from conveyor.store.notifications import NotificationRecord

log = logging.getLogger("conveyor.notify")
MAX_IN_FLIGHT = 16


def backoff(rt: Runtime, attempts: int, asked: float | None) -> float:
    """Seconds before the next try after ``attempts`` failed ones."""
    wait: float = min(rt.settings.notify_retry_base * 2.0 ** max(0, attempts - 1), rt.settings.notify_retry_max)
    return max(wait, asked or 0.0)


class NotifyHost:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="conveyor-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop looking for work; a delivery in flight finishes (or is retried after a restart)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the database away for a moment: try again at the next tick
                log.exception("notifications: a round failed")
            self._wake.wait(self.rt.settings.notify_interval)
            self._wake.clear()

    def tick(self) -> None:
        """Plan what new events call for, then start the deliveries that are due."""
        rt = self.rt
        with rt.db.read() as conn:  # a read first: no write transaction when the stream is idle
            behind = stream.head(conn) > stream.cursor(conn, plan.CONSUMER)
        if behind:
            stream.consume(rt.db, plan.CONSUMER, lambda conn, e: plan.handle(rt, conn, e, rt.clock.now()), rt.clock.now)
        now = rt.clock.now()
        with self._lock:
            busy = set(self._busy)
        if len(busy) >= MAX_IN_FLIGHT:
            return
        with rt.db.read() as conn:
            ready = outbox.due(conn, now, busy, MAX_IN_FLIGHT - len(busy))
        for record in ready:
            with rt.db.begin() as conn:
                if not outbox.claim(conn, record.id, now, rt.settings.notify_timeout * 2 + 30):
                    continue
            with self._lock:
                self._busy.add(record.destination)
            threading.Thread(
                target=self._deliver, args=(record,), name=f"conveyor-notify-{record.id}", daemon=True
            ).start()

    def _deliver(self, record: NotificationRecord) -> None:
        try:
            deliver(self.rt, record)
        except Exception:
            log.exception("notification %s: delivery crashed", record.id)
        finally:
            with self._lock:
                self._busy.discard(record.destination)
            self._wake.set()  # the destination's next message may go now


def deliver(rt: Runtime, record: NotificationRecord) -> None:
    """One attempt at one delivery, and its outcome recorded."""
    sender = notifier(record.notifier)
    text = record.text or ""
    deployment_id = record.deployment_id or ""
    try:
        with rt.db.read() as conn:
            message = message_for(rt, conn, deployment_id, record.event, record.context, record.position, sender.style)
            thread = outbox.thread(conn, record.destination, deployment_id)
        text = message.text

        def keep(ref: dict[str, Any]) -> None:
            with rt.db.begin() as conn:
                outbox.keep_thread(conn, record.destination, deployment_id, ref, rt.clock.now())

        delivery = Delivery(
            record.id,
            record.destination,
            record.deployment_id,
            record.config,
            message,
            rt.settings,
            thread,
            keep,
            rt.settings.notify_timeout,
        )
        note = sender.send(delivery)
    except Refused as exc:
        _failed(rt, record, text, f"refused: {exc}", None)
        return
    except TemplateError as exc:  # the service's own template: writing it again will not mend it
        _failed(rt, record, text, f"refused: the {record.event} template: {type(exc).__name__}: {exc}", None)
        return
    except Retry as exc:
        _failed(rt, record, text, str(exc), exc.after)
        return
    except Exception as exc:  # the network: connection refused, a timeout, a reset
        _failed(rt, record, text, f"{type(exc).__name__}: {exc}", None)
        return
    with rt.db.begin() as conn:
        outbox.delivered(conn, record.id, rt.clock.now(), text, note)


def _failed(rt: Runtime, record: NotificationRecord, text: str, error: str, asked: float | None) -> None:
    now = rt.clock.now()
    retry_at: datetime | None = now + timedelta(seconds=backoff(rt, record.attempts + 1, asked))
    if error.startswith("refused: ") or now - record.created_at > timedelta(seconds=rt.settings.notify_give_up):
        retry_at = None
    log.warning("notification %s to %s: %s", record.id, record.destination, error)
    with rt.db.begin() as conn:
        outbox.attempt_failed(conn, record.id, text=text, error=error, retry_at=retry_at)


def send_sample(rt: Runtime, service: Any, environment: str, actor: str) -> list[dict[str, Any]]:
    """`conveyor notify test`: a sample message through every notifier of the environment, now;
    what each did. Not recorded (a sample belongs to no deployment)."""
    from conveyor.notify.render import sample

    env = rt.spec_of(service.config_text).environment(environment)
    results = []
    for index, entry in enumerate(env.notify):
        config = plan.config_of(entry)
        sender = notifier(entry.kind)
        message: Message = sample(rt, service, environment, actor, entry.kind, sender.style)
        message.values["github_repository"] = service.github_repository
        where = plan.destination(service.name, environment, index, entry.kind)
        delivery = Delivery(0, where, None, config, message, rt.settings, timeout=rt.settings.notify_timeout)
        try:
            results.append({"notifier": entry.kind, "destination": where, "ok": True, "note": sender.send(delivery)})
        except Exception as exc:
            results.append({"notifier": entry.kind, "destination": where, "ok": False, "note": str(exc) or repr(exc)})
    return results
