"""A flags world on each database: a migrated app database with two services, a runtime (no DBOS:
flag operations do not need the engine) and a user of every role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conveyor.auth.users import User, add_user
from conveyor.flags.ruleset import Scope
from conveyor.runtime import Runtime
from conveyor.settings import Settings
from conveyor.store import services as service_store
from conveyor.store.db import Database

CONFIG = """\
service: {name}
environments:
  development:
    target: {{kind: command, deploy: ./deploy.sh}}
  staging:
    target: {{kind: command, deploy: ./deploy.sh}}
  production:
    deployers: [release_manager]
    target: {{kind: command, deploy: ./deploy.sh}}
"""
ROLES = {"eve": "engineer", "rita": "release_manager", "max": "manager", "ada": "admin"}


@dataclass
class Notes:
    """A notify callback that records what it was told."""

    calls: list[list[Scope]] = field(default_factory=list)

    def __call__(self, scopes: list[Scope]) -> None:
        self.calls.append(list(scopes))


@dataclass
class FlagWorld:
    rt: Runtime
    users: dict[str, User]
    notes: Notes

    @property
    def db(self) -> Database:
        return self.rt.db


@pytest.fixture
def fw(tmp_path: Path, database_url: str) -> Iterator[FlagWorld]:
    db = Database(database_url)
    db.migrate()
    now = datetime.now(UTC)
    users = {}
    with db.begin() as conn:
        for name in ("shop", "billing"):
            service_store.upsert_service(conn, name, "/src", "/repo", CONFIG.format(name=name), now)
        for name, role in ROLES.items():
            users[name] = add_user(conn, name, [role], now)
    rt = Runtime(settings=Settings(home=tmp_path / "home", database_url=database_url), db=db)
    try:
        yield FlagWorld(rt, users, Notes())
    finally:
        db.dispose()
