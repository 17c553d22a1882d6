"""The SDK client: keeps a compiled ruleset in sync with the server and evaluates flags locally.

Sync: at start the ruleset is fetched (``GET {url}/api/v1/flags/ruleset``, conditional on its
ETag), then a background thread follows the SSE stream (``GET {url}/api/v1/flags/stream``), which
sends the full ruleset on connect and after every change. While the stream is down the thread
reconnects with jittered exponential backoff and polls the ruleset every ``poll_interval`` seconds.
A ``bootstrap`` file serves until the first fetch succeeds and, with ``persist=True``, is rewritten
after every update, so a restart while the server is down starts with the last known flags.

Fork safety: after ``os.fork()`` (gunicorn --preload, multiprocessing) the child keeps the last
ruleset and starts its own background thread on its first evaluation.

Never raises into app code: evaluation errors give the caller's default and are logged once per
(flag, error kind); connection errors are logged once per kind until the next success.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from conveyor_flags.context import with_current
from conveyor_flags.evaluate import (
    ERROR,
    GENERAL,
    PROVIDER_NOT_READY,
    Evaluation,
    Ruleset,
    RulesetError,
    compile_ruleset,
)
from conveyor_flags.transport import Endpoint, TransportError

log = logging.getLogger("conveyor_flags")

Listener = Callable[[Ruleset], None]
_CLIENTS: weakref.WeakSet[Client] = weakref.WeakSet()
_PID_CHECK_EVERY = 1024  # calls between os.getpid() checks (a fork that skipped the at-fork hooks)


class Client:
    """Evaluates flags against a locally cached ruleset kept in sync with a Conveyor server.

    ``url`` is the server's base URL; ``sdk_key`` is an environment's SDK key (the key decides the
    environment). With ``url=None`` the client is offline: it serves ``bootstrap`` or ``ruleset``.
    """

    def __init__(
        self,
        url: str | None = None,
        sdk_key: str | None = None,
        *,
        bootstrap: str | os.PathLike[str] | None = None,
        persist: bool = False,
        ruleset: Mapping[str, Any] | None = None,
        poll_interval: float = 30.0,
        stream: bool = True,
        timeout: float = 10.0,
        stream_read_timeout: float = 90.0,
        ready_timeout: float = 3.0,
        backoff: tuple[float, float] = (0.5, 30.0),
        start: bool = True,
    ) -> None:
        self._endpoint = Endpoint(url, sdk_key) if url else None
        self._bootstrap = Path(bootstrap) if bootstrap else None
        self._persist = persist
        self._poll_interval = poll_interval
        self._use_stream = stream
        self._timeout = timeout
        self._stream_read_timeout = stream_read_timeout
        self._backoff = backoff
        self._ruleset: Ruleset | None = None
        self._raw: str | None = None
        self._etag: str | None = None
        self._source = "none"
        self._listeners: list[Listener] = []
        self._logged: set[tuple[str, str]] = set()
        self._calls = 0
        self._started = False
        self._closed = False
        self._forked = False
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._init_process_state()
        _CLIENTS.add(self)
        if ruleset is not None:
            self._apply(json.dumps(ruleset), "ruleset argument")
        elif self._bootstrap is not None:
            self._load_bootstrap()
        if start:
            self.start(ready_timeout)

    # ---- evaluation (the hot path) -------------------------------------------------------------

    def evaluate(self, key: str, context: Mapping[str, Any] | None = None, default: Any = None) -> Evaluation:
        """Evaluate ``key`` for ``context`` laid over the current ``flag_context``; never raises.
        See ``Ruleset.evaluate`` for ``default``."""
        try:
            if self._forked:
                self._resume_after_fork()
            self._calls += 1
            if not self._calls % _PID_CHECK_EVERY and os.getpid() != self._pid:
                self._forked = True
                self._resume_after_fork()
            ruleset = self._ruleset
            if ruleset is None:
                result = Evaluation(default, None, ERROR, PROVIDER_NOT_READY, self._not_ready_message())
            else:
                result = ruleset.evaluate(key, with_current(context), default)
                if result.error_code is None:
                    return result
        except Exception as exc:  # a context whose values misbehave, or a bug: never into app code
            result = Evaluation(default, None, ERROR, GENERAL, f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            self._report(key, result)
        return result

    def feature_flag(self, key: str, user_id: Any = None, default: Any = False, **attributes: Any) -> Any:
        """The flag's value for this user and these attributes; ``default`` on any error."""
        if user_id is not None:
            attributes["user_id"] = user_id
        return self.evaluate(key, attributes, default).value

    # ---- state ---------------------------------------------------------------------------------

    @property
    def ruleset(self) -> Ruleset | None:
        """The compiled ruleset in use (None until one arrived)."""
        return self._ruleset

    @property
    def source(self) -> str:
        """Where the ruleset in use came from: none, bootstrap, fetch, stream, ruleset argument."""
        return self._source

    def on_change(self, listener: Listener) -> None:
        """Call ``listener(ruleset)`` (from the sync thread) after every new ruleset."""
        self._listeners.append(listener)

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Wait until a ruleset is in use; return whether one is."""
        if self._ruleset is None and self._endpoint is not None:
            self._ready.wait(timeout)
        return self._ruleset is not None

    def refresh(self) -> bool:
        """Fetch the ruleset now (in this thread); return whether the server answered."""
        return self._fetch()

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self, ready_timeout: float = 0.0) -> None:
        """Start the sync thread; wait up to ``ready_timeout`` s for the first fetch to finish."""
        with self._lock:
            if self._closed or self._endpoint is None:
                self._first_attempt.set()
                return
            self._started = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="conveyor-flags-sync", daemon=True)
                self._thread.start()
        if ready_timeout > 0:
            self._first_attempt.wait(ready_timeout)

    def close(self) -> None:
        """Stop the sync thread and close its connection. Evaluation keeps the last ruleset."""
        with self._lock:
            self._closed = True
            self._stop.set()
            thread, self._thread = self._thread, None
        self._drop_socket()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._timeout + 1)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- process state and fork safety ---------------------------------------------------------

    def _init_process_state(self) -> None:
        """Locks, events and the thread handle: fresh in a new process (the parent's may be held)."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._first_attempt = threading.Event()
        self._thread = None
        self._sock = None  # after a fork this was the parent's connection: never shut it down here
        if self._ruleset is not None:
            self._ready.set()
            self._first_attempt.set()

    def _after_fork_in_child(self) -> None:
        self._init_process_state()
        self._forked = True

    def _resume_after_fork(self) -> None:
        if self._pid != os.getpid():  # found by the pid check: the at-fork hook did not run
            self._init_process_state()
        with self._lock:
            if not self._forked:
                return
            self._forked = False
            restart = self._started and not self._closed
        if restart:
            log.debug("conveyor_flags: restarting the sync thread in forked process %d", self._pid)
            self.start()

    # ---- sync thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        stop = self._stop
        try:
            self._fetch()
        finally:
            self._first_attempt.set()
        low, high = self._backoff
        delay = low
        next_poll = time.monotonic() + self._poll_interval
        while not stop.is_set():
            if self._use_stream:
                delivered = self._follow_stream()
                if stop.is_set():
                    return
                delay = low if delivered else min(delay * 2, high)
                if delivered:  # it was up and dropped: catch up at once instead of waiting a poll
                    next_poll = time.monotonic()
                retry_at = time.monotonic() + delay * random.uniform(0.5, 1.0)
            else:
                retry_at = float("inf")
            # the stream is down (or off): poll until it is time to reconnect
            while not stop.is_set():
                now = time.monotonic()
                if now >= retry_at:
                    break
                if now >= next_poll:
                    self._fetch()
                    next_poll = time.monotonic() + self._poll_interval
                stop.wait(max(0.0, min(retry_at, next_poll) - time.monotonic()))

    def _fetch(self) -> bool:
        endpoint = self._endpoint
        if endpoint is None:
            return False
        try:
            response = endpoint.fetch(self._etag, self._timeout, self._hold)
        except TransportError as exc:
            self._log_once(("server", exc.kind), "conveyor_flags: %s; serving the %s ruleset", exc, self._age())
            return False
        except Exception as exc:
            self._log_once(("server", "error"), "conveyor_flags: fetching the ruleset failed: %r", exc)
            return False
        self._connected()
        if response.status == 200 and self._apply(response.body, "fetch"):
            self._etag = response.etag
        return True

    def _follow_stream(self) -> bool:
        """Follow the SSE stream until it ends; return whether it delivered a usable ruleset."""
        assert self._endpoint is not None
        delivered = False
        try:
            for event in self._endpoint.stream(self._timeout, self._stream_read_timeout, self._hold):
                if self._stop.is_set():
                    break
                self._connected()
                if event.name == "ruleset" and self._apply(event.data, "stream"):
                    delivered = True
        except TransportError as exc:
            if not self._stop.is_set():
                self._log_once(("server", exc.kind), "conveyor_flags: %s; polling every %ss", exc, self._poll_interval)
        except Exception as exc:
            self._log_once(("server", "error"), "conveyor_flags: the flag stream failed: %r", exc)
        return delivered

    def _hold(self, sock: socket.socket | None) -> None:
        self._sock = sock

    def _drop_socket(self) -> None:
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # ---- applying rulesets ---------------------------------------------------------------------

    def _apply(self, text: str, source: str) -> bool:
        if text == self._raw:
            return True
        try:
            ruleset = compile_ruleset(json.loads(text))
        except (ValueError, RulesetError) as exc:
            what = "malformed JSON" if isinstance(exc, json.JSONDecodeError) else "invalid ruleset"
            self._log_once(
                ("ruleset", what),
                "conveyor_flags: %s from %s: %s; keeping the %s ruleset",
                what,
                source,
                exc,
                self._age(),
            )
            return False
        with self._lock:
            self._ruleset, self._raw, self._source = ruleset, text, source
        self._ready.set()
        if self._persist and source in ("fetch", "stream"):
            self._write_bootstrap(text)
        for listener in list(self._listeners):
            try:
                listener(ruleset)
            except Exception as exc:
                self._log_once(("listener", repr(listener)), "conveyor_flags: an on_change listener failed: %r", exc)
        return True

    def _load_bootstrap(self) -> None:
        path = self._bootstrap
        assert path is not None
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if not self._persist:
                self._log_once(("bootstrap", "missing"), "conveyor_flags: bootstrap file %s does not exist", path)
            return
        except OSError as exc:
            self._log_once(("bootstrap", "unreadable"), "conveyor_flags: cannot read bootstrap file %s: %s", path, exc)
            return
        self._apply(text, "bootstrap")

    def _write_bootstrap(self, text: str) -> None:
        path = self._bootstrap
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, path)
        except OSError as exc:
            self._log_once(("bootstrap", "write"), "conveyor_flags: cannot write bootstrap file %s: %s", path, exc)

    # ---- logging once --------------------------------------------------------------------------

    def _log_once(self, kind: tuple[str, str], message: str, *args: Any) -> None:
        with self._log_lock:
            if kind in self._logged:
                return
            self._logged.add(kind)
        log.warning(message, *args)

    def _connected(self) -> None:
        """The server answered: connection errors seen from now on are news again."""
        if self._logged:
            with self._log_lock:
                self._logged = {kind for kind in self._logged if kind[0] != "server"}

    def _report(self, key: str, result: Evaluation) -> None:
        code = result.error_code or GENERAL
        self._log_once(
            ("*" if code == PROVIDER_NOT_READY else key, code),
            "conveyor_flags: flag %r: %s: %s; returning the default %r",
            key,
            code,
            result.error_message,
            result.value,
        )

    def _age(self) -> str:
        return "last known" if self._ruleset is not None else "(no)"

    def _not_ready_message(self) -> str:
        if self._endpoint is None:
            return (
                "no ruleset: set CONVEYOR_FLAGS_URL and CONVEYOR_FLAGS_KEY (or call conveyor_flags.configure), "
                "or give a bootstrap file"
            )
        return f"no ruleset yet from {self._endpoint.url} and no bootstrap file"


def _after_fork_in_child() -> None:
    for client in list(_CLIENTS):
        client._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
