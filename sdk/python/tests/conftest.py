"""Fixtures for the SDK tests; the test doubles themselves are in flags_fakes.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flags_fakes import ClosingServer, FlagsServer


@pytest.fixture
def flags_server() -> Iterator[FlagsServer]:
    server = FlagsServer().start()
    yield server
    server.stop()


@pytest.fixture
def closing_server() -> Iterator[ClosingServer]:
    server = ClosingServer()
    yield server
    server.stop()
