"""The engine's process-wide parts: settings, database, clock, and DBOS itself.

DBOS steps run in DBOS's threads and find what they need through ``runtime()``; it is set once
when the server starts (``launch``) and holds nothing that matters across a restart.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from dbos import DBOS, DBOSConfig

from conveyor import __version__
from conveyor.domain.clock import Clock, SystemClock
from conveyor.settings import Settings
from conveyor.spec import ServiceSpec, parse_spec
from conveyor.store.db import Database, normalize_url

QUEUE_NAME = "deploys"


@dataclass
class Runtime:
    settings: Settings
    db: Database
    clock: Clock = field(default_factory=SystemClock)

    def spec_of(self, config_text: str, name: str = "conveyor.yml") -> ServiceSpec:
        return _parse_cached(config_text, name)


@lru_cache(maxsize=256)
def _parse_cached(config_text: str, name: str) -> ServiceSpec:
    return parse_spec(config_text, name)


_current: Runtime | None = None


def runtime() -> Runtime:
    if _current is None:
        raise RuntimeError("the engine is not running: call conveyor.runtime.launch() first")
    return _current


QUEUE_POLL_SECONDS = 1.0  # a safety net: enqueueing and every workflow's end wake the queue
QUEUE_POLL_UNWOKEN_SECONDS = 0.1  # when this DBOS cannot be woken (engine/queue_wake.py)


def launch(rt: Runtime, *, queue_poll_seconds: float | None = None) -> None:
    """Start DBOS on the workflow database: recovers every deployment that was in flight. The
    workflows must be registered first: the composition root (``conveyor/app.py``) imports them.

    The deployment queue is polled every ``queue_poll_seconds`` (default: 1 s when enqueueing and
    workflow ends wake it, else 0.1 s)."""
    global _current
    _current = rt
    logging.getLogger("dbos").setLevel(logging.WARNING)
    config: DBOSConfig = {
        "name": "conveyor",
        "system_database_url": normalize_url(rt.settings.workflows_database_url),
        "application_version": __version__,
        "executor_id": rt.settings.executor_id,
        "log_level": "WARNING",
    }
    _sqlite_wal(config["system_database_url"] or "")
    DBOS(config=config)
    DBOS.launch()
    from conveyor.engine import queue_wake  # the engine builds on this module

    woken = queue_wake.install(_dbos_instance(), QUEUE_NAME)
    if queue_poll_seconds is None:
        queue_poll_seconds = QUEUE_POLL_SECONDS if woken else QUEUE_POLL_UNWOKEN_SECONDS
    DBOS.register_queue(QUEUE_NAME, partition_concurrency=1, polling_interval_sec=queue_poll_seconds)


def _dbos_instance() -> object:
    from dbos._dbos import _get_dbos_instance

    return _get_dbos_instance()


def _sqlite_wal(url: str) -> None:
    """Put a SQLite workflow database in WAL mode (it stays so): DBOS checkpoints every step, and
    a rollback-journal commit costs several times a WAL one."""
    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def shutdown() -> None:
    global _current
    DBOS.destroy(destroy_registry=False)
    _current = None
