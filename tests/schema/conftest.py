"""Safe database changes (docs/database.md) against the real PostgreSQL of this machine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.conftest import PG_ADMIN_URL, pg_database


@pytest.fixture
def app_database(pg_problem: str | None) -> Iterator[str]:
    """A PostgreSQL database for the deployed app (not Conveyor's own): created here, dropped after.
    Its URL is a libpq URL (postgresql://postgres@127.0.0.1:5432/NAME) that psql, pg_dump,
    psycopg, Alembic (postgresql+psycopg://...) and Django can use."""
    if pg_problem:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({pg_problem}); the app database tests need it")
    with pg_database("conveyor_app") as url:
        yield url
