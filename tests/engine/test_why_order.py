"""The gates in `why` (the API, so the CLI) and on the dashboard's deploy form come in the order the
registry declares (gates/registry.py), whatever order a conveyor.yml lists them in or modules are
imported. In-process: the app through Starlette's TestClient, on a clock the test sets."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from tests.clock import ControlledClock
from tests.e2e.harness import SCRIPTS, commit, git
from tests.inproc import app

from conveyor.gates.registry import GATES

DECLARED = ["deployers", "reviews", "checks", "staging_verified", "migrations", "checklist", "schedule", "approval"]
TARGET = "{kind: command, deploy: ./scripts/deploy.sh}"
# every gate on, listed in an order unlike the declared one
CONFIG = textwrap.dedent(
    f"""\
    service: shop
    environments:
      staging:
        branch: main
        target: {TARGET}
      production:
        target: {TARGET}
        deployers: [release_manager]
        migrate: ./migrate.sh
        gates:
          approval: {{count: 1}}
          schedule: {{timezone: UTC, allow: ["Mon-Fri 09:00-17:00"]}}
          checklist: [rollback_plan]
          staging_verified: true
          checks: [tests]
          reviews: 1
    """
)


def test_the_registry_declares_the_built_in_gates_in_order() -> None:
    assert GATES.names()[: len(DECLARED)] == DECLARED


def test_why_lists_every_gate_in_the_declared_order(tmp_path: Path) -> None:
    repo = tmp_path / "shop"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {**SCRIPTS, "conveyor.yml": CONFIG}, "initial")
    tuesday_noon = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    users = {"rita": ["release_manager"]}
    with app(tmp_path / "home", f"sqlite:///{tmp_path / 'c.db'}", users, ControlledClock(tuesday_noon)) as a:
        a.ok("admin", "POST", "/services", json={"source": str(repo)})
        answer = a.ok("rita", "GET", "/why", params={"environment": "production", "ref": "main"})
        assert [g["gate"] for g in answer["gates"]] == DECLARED
        passed = [g["gate"] for g in answer["gates"] if g["passed"]]
        assert passed == ["deployers", "migrations", "schedule"]  # the clock's noon; nothing linted yet
        saturday = a.ok(
            "rita", "GET", "/why", params={"environment": "production", "ref": "main", "at": "2026-12-05T12:00:00Z"}
        )
        assert [g["gate"] for g in saturday["gates"]] == DECLARED
        assert [g["gate"] for g in saturday["gates"] if g["passed"]] == ["deployers", "migrations"]
        # the dashboard's deploy form shows the same answer, in the same order
        a.sign_in("rita")
        page = a.client.get("/deploy/gates", params={"service": "shop", "environment": "production", "ref": "main"})
        assert page.status_code == 200, page.text
        assert re.findall(r'data-gate="([a-z_]+)"', page.text) == DECLARED
