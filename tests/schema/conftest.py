"""Safe database changes (docs/database.md) against the real PostgreSQL of this machine."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from tests.conftest import PG_ADMIN_URL


@pytest.fixture
def app_database(pg_problem: str | None) -> Iterator[str]:
    """A PostgreSQL database for the deployed app (not Conveyor's own): created here, dropped after.
    Its URL is a libpq URL (postgresql://postgres@127.0.0.1:5432/NAME) that psql, pg_dump,
    psycopg, Alembic (postgresql+psycopg://...) and Django can use."""
    if pg_problem:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({pg_problem}); the app database tests need it")
    import psycopg

    name = f"conveyor_app_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
