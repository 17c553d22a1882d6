"""Shared fixtures: a database per test on SQLite and on PostgreSQL (skipped with a message when
PostgreSQL is not reachable), and helpers to wait on conditions with a deadline."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from conveyor.store.db import Database

PG_ADMIN_URL = os.environ.get("CONVEYOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
T = TypeVar("T")


# The slowest test files first (measured with --durations), then everything else in file order. The
# Makefile hands tests to xdist's workers one at a time (--maxschedchunk 1): the long tests spread over
# the workers at the start and the many short ones fill in at the end. (With xdist's default chunks
# the first worker was handed the first hundred, all slow, and ran alone for minutes at the end.)
SLOW_FIRST = (
    "tests/api/test_fuzz.py",
    "tests/notify/test_outcomes.py",
    "tests/e2e/test_rollback_matrix.py",
    "tests/e2e/test_local_target.py",
    "tests/e2e/test_flags.py",
    "tests/e2e/test_cli.py",
    "tests/e2e/test_release_invariant.py",
    "tests/e2e/test_gates.py",
    "tests/e2e/test_demo.py",
    "tests/e2e/test_hotfix.py",
    "tests/e2e/",
    "tests/schema/",
    "tests/browser/",
    "tests/auth/test_users_cli.py",
    "tests/spec/test_spec_bounds.py",
    "tests/examples/",
    "tests/engine/test_events",
)


def _one_tls_context() -> None:
    """Every httpx client a test makes (each ``httpx.get`` of a poll loop included) would build a new
    TLS context and load certifi's CA bundle: about 60 ms of CPU each, thousands of times per run.
    Tests share the process's one context (conveyor.httpclient.tls, httpx's own default trust)."""
    import httpx._transports.default as transports

    from conveyor import httpclient

    build = transports.create_ssl_context

    def shared(verify: object = True, cert: object = None, trust_env: bool = True) -> object:
        if verify is True and cert is None and trust_env:
            return httpclient.tls()
        return build(verify=verify, cert=cert, trust_env=trust_env)  # type: ignore[arg-type]

    transports.create_ssl_context = shared  # type: ignore[assignment]


def _cheap_argon2() -> None:
    """Passwords the tests set are hashed with argon2id at its cheapest (1 pass over 1 MiB, 1 lane:
    about a millisecond) instead of the production profile (3 passes over 64 MiB in 4 lanes: 0.35 to
    0.6 s of CPU each; 10 of the 28 CPU seconds of the in-process API and dashboard tests). A hash
    carries its parameters, so the servers the tests start verify it as cheaply. The timing test of
    sign-ins uses the production hasher (the ``production_argon2`` fixture)."""
    from argon2 import PasswordHasher

    from conveyor.auth import users

    users._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    users._dummy.clear()


@pytest.fixture
def production_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production argon2 profile, for a test that measures what a password check costs."""
    from argon2 import PasswordHasher

    from conveyor.auth import users

    monkeypatch.setattr(users, "_hasher", PasswordHasher())
    monkeypatch.setattr(users, "_dummy", [])


def pytest_configure(config: pytest.Config) -> None:
    _one_tls_context()
    _cheap_argon2()
    config.addinivalue_line("markers", "server_process: the test's server runs as a child process (it is SIGKILLed)")
    config.addinivalue_line("markers", SQLITE_ONLY_DOC)


# An end-to-end flow runs on PostgreSQL where what it shows depends on the database: the engine's
# workflows, locks and recovery (test_pipeline, test_crash, test_event_stream, the rollback matrix)
# and every store module (the store, flags, audit and auth tests run on both). A flow through the API
# or the CLI whose database work is that same store code (permissions, flags over HTTP, the router,
# webhooks) marks itself `sqlite_only`: its PostgreSQL run would repeat the store tests, slowly.
SQLITE_ONLY_DOC = "sqlite_only: an end-to-end flow whose database work the store tests already cover on PostgreSQL"


def _postgres_run_of_sqlite_only(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    on_postgres = callspec is not None and callspec.params.get("database_url") == "postgres"
    return on_postgres and item.get_closest_marker("sqlite_only") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dropped = [item for item in items if _postgres_run_of_sqlite_only(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not _postgres_run_of_sqlite_only(item)]
    root = Path(str(config.rootpath))

    def rank(item: pytest.Item) -> int:
        path = Path(str(item.path)).relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        return next((i for i, prefix in enumerate(SLOW_FIRST) if path.startswith(prefix)), len(SLOW_FIRST))

    items.sort(key=rank)  # stable: each file keeps its order


def wait_until(check: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


class Pacer:
    """At most ``rate`` turns a second, for the load tests' clients. Unpaced, one client with the
    router and the app it drove took a whole core of this 2-core machine from the deploy it was
    watching; a few hundred requests a second still see every switch and every dropped request."""

    def __init__(self, rate: float) -> None:
        self.gap = 1.0 / rate
        self.next_at = time.monotonic()

    def wait(self, stop: threading.Event) -> None:
        """Wait for the next turn (or ``stop``); a client that fell behind does not burst to catch up."""
        self.next_at += self.gap
        delay = self.next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            self.next_at = time.monotonic()


def _pg_reachable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3, autocommit=True):
            return None
    except Exception as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@pytest.fixture(scope="session")
def pg_problem() -> str | None:
    return _pg_reachable()


@contextmanager
def pg_database(prefix: str = "conveyor_test") -> Iterator[str]:
    """A new, empty PostgreSQL database on this machine's server: its URL, and it is dropped after."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:  # FORCE: a session still closing is cut
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, pg_problem: str | None) -> Iterator[str]:
    """An empty database on each backend; the PostgreSQL one is created and dropped here."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'conveyor.db'}"
        return
    if pg_problem:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({pg_problem}); skipping the PostgreSQL run")
    with pg_database() as url:
        yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A migrated database on each backend, disposed after the test (a module may define its own)."""
    database = Database(database_url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()
