"""The database handle: engine setup for SQLite and PostgreSQL, and schema migrations.
SQLite files are created readable by their owner only (0600; SQLite gives its -wal and -shm files
the same mode), in a directory created 0700."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url

from conveyor.errors import InvalidInput

MIGRATIONS = Path(__file__).parent / "migrations"
POOL: dict[str, Any] = {"pool_size": 10, "max_overflow": 20}  # SQLite and PostgreSQL alike
WRITER_WAIT_SECONDS = 30.0  # then SQLite's own busy timeout decides, as for another process
AFTER_COMMIT = "conveyor_after_commit"  # conn.info key: callables run once the transaction committed


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if missing; the directory itself is created 0700."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 if missing, or narrow it to 0600 if it is ours and wider."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except FileExistsError:
        if path.stat().st_uid == os.geteuid() and path.stat().st_mode & 0o077:
            path.chmod(0o600)
    return path


def private_sqlite(url: str) -> None:
    """For a SQLite file URL: its directory (0700 when created) and the file itself (0600)."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        private_dir(path.parent)
        private_file(path)


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise InvalidInput(
            f"database URL {url!r} is not a valid SQLAlchemy URL",
            fix="use sqlite:///PATH or postgresql://USER@HOST:PORT/DB",
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        private_sqlite(url)
        # the same pool as PostgreSQL's: under WAL, readers (API requests, step contexts) run
        # alongside the one writer, and each holds a connection of its own
        in_file = bool(parsed.database) and parsed.database != ":memory:"  # in memory: one connection
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **(POOL if in_file else {})
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # Let SQLAlchemy emit BEGIN itself so that "BEGIN IMMEDIATE" below takes the write lock
        # at the start of a write transaction instead of failing half-way through it.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise InvalidInput(
            f"database {parsed.get_backend_name()!r} is not supported",
            fix="use SQLite (the default) or PostgreSQL",
        )
    return create_engine(url, pool_pre_ping=True, **POOL)


def _sqlite_begin(conn: Connection) -> None:
    """Writers take the write lock up front; readers (``Database.read``) do not, and under WAL
    they run alongside a writer."""
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("conveyor_read") else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN IMMEDIATE
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Database:
    """One app database. ``begin()`` yields a connection inside a transaction."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        # SQLite has one writer at a time; a writer that finds the lock taken sleeps in SQLite's
        # busy handler (1, 2, 5, 10 ... ms) however soon it is free. This process's writers queue
        # here instead and go the moment the one before them commits; other processes still meet
        # the busy timeout.
        self._writers = threading.RLock() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction. Callables put in ``conn.info[AFTER_COMMIT]`` run after it committed
        (the audit log's anchor file is written that way: never for a transaction that rolled back)."""
        queued = self._writers is not None and self._writers.acquire(timeout=WRITER_WAIT_SECONDS)
        try:
            with self.engine.begin() as conn:
                try:
                    yield conn
                except BaseException:
                    conn.info.pop(AFTER_COMMIT, None)
                    raise
                hooks: list[Callable[[], None]] = conn.info.pop(AFTER_COMMIT, [])
        finally:
            if queued:
                assert self._writers is not None
                self._writers.release()
        for hook in hooks:
            hook()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: on SQLite it does not block, nor wait for, writers."""
        with self.engine.connect() as conn:
            conn.execution_options(conveyor_read=True)
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.info.pop(AFTER_COMMIT, None)  # nothing is written here: no hook may leak to the next user

    def migrate(self) -> None:
        """Bring the schema to the newest migration. Safe to call on every start."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def has_schema(self) -> bool:
        return inspect(self.engine).has_table("services")

    def dispose(self) -> None:
        self.engine.dispose()


LOCKS = {"audit": 7262010, "deployment_seq": 7262011}


def serialize(conn: Connection, name: str) -> None:
    """Make writers of ``name`` take turns until the transaction ends. SQLite write transactions
    are already one at a time (BEGIN IMMEDIATE); PostgreSQL takes an advisory lock."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LOCKS[name]})")
