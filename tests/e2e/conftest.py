from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.e2e.gates_world import GateWorld, make_gate_world
from tests.e2e.harness import Server, make_service_repo, server_process


@dataclass
class World:
    repo: Path
    effects: Path
    server: Server


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Iterator[World]:
    """A service repository (develop and main) and a running server on the given database."""
    effects = tmp_path / "effects"
    repo = make_service_repo(tmp_path / "shop", effects)
    server = Server(home=tmp_path / "home", database_url=database_url, process=server_process(request))
    server.start()
    try:
        yield World(repo, effects, server)
    finally:
        for hold in effects.glob("hold-*"):  # a step left waiting on one (e.g. after a cancel) ends now
            hold.unlink()
        server.stop()


@pytest.fixture
def gw(tmp_path: Path, database_url: str) -> Iterator[GateWorld]:
    """A service whose production has every gate of part 1, and a user of every role."""
    yield from make_gate_world(tmp_path, database_url)
