"""A clock the test controls, for a server that runs in the test's process (conveyor.devserver)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta


class ControlledClock:
    """Stands still at the instant it was set to, or, once set ``running``, moves on from it with
    real time. Tests move it; the server reads it through ``Runtime.clock``."""

    def __init__(self, at: datetime, running: bool = False) -> None:
        self._lock = threading.Lock()
        self.set(at, running)

    def set(self, at: datetime, running: bool = False) -> None:
        if at.utcoffset() is None:
            raise ValueError("the clock needs an aware datetime")
        with self._lock:
            self._at, self._since = at, (time.monotonic() if running else None)

    def now(self) -> datetime:
        with self._lock:
            if self._since is None:
                return self._at
            return self._at + timedelta(seconds=time.monotonic() - self._since)
