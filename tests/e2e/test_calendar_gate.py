"""The deploy calendar end to end: `why --at`, refusals outside the window with the next opening,
`--when-open` waiting for an opening (on the server's clock, which the test moves), emergency
deployments approved by a manager (the wait for it survives a SIGKILL of the server), freezes, and
`conveyor calendar`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.clock import ControlledClock
from tests.conftest import wait_until
from tests.e2e.gates_world import GateWorld, make_gate_world
from tests.e2e.harness import server_process

pytestmark = pytest.mark.sqlite_only  # see SQLITE_ONLY_DOC in tests/conftest.py

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
TARGET = "{kind: command, deploy: ./scripts/deploy.sh, rollback: ./scripts/rollback.sh}"


def config(schedule: str) -> object:
    def make(effects: Path) -> str:
        return textwrap.dedent(
            f"""\
            service: shop
            env: {{EFFECTS: '{effects}'}}
            environments:
              staging:
                target: {TARGET}
              production:
                target: {TARGET}
                deployers: [release_manager]
                gates:
            """
        ) + textwrap.indent(schedule, " " * 6)

    return make


PROCESS_DOC = """schedule:
  timezone: America/Los_Angeles
  allow: ["Tue-Thu 10:00-15:00"]
  deny: ["Fri 12:00-24:00"]
  holidays: US
  emergency: {approvers: [manager]}
"""
ALWAYS_CLOSED = """schedule:
  timezone: UTC
  deny: ["Mon-Sun 00:00-24:00"]
"""


def cli(gw: GateWorld, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args], env=gw.env_for(user), capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def office(tmp_path: Path) -> Iterator[GateWorld]:
    yield from make_gate_world(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", config(PROCESS_DOC))  # type: ignore[arg-type]


@pytest.fixture
def closed(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Iterator[GateWorld]:
    process = server_process(request)
    yield from make_gate_world(tmp_path, database_url, config(ALWAYS_CLOSED), process=process)  # type: ignore[arg-type]


def test_why_at_any_instant_and_the_calendar(office: GateWorld) -> None:
    ok = cli(office, "rita", "why", "production", "--ref", "main", "--at", "2026-12-03T14:30:00-08:00", "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    gate = next(g for g in json.loads(ok.stdout)["gates"] if g["gate"] == "schedule")
    assert gate["passed"] and "Tue-Thu 10:00-15:00" in gate["reason"]
    shut = cli(office, "rita", "why", "production", "--ref", "main", "--at", "2026-11-26T11:00:00-08:00", "--json")
    assert shut.returncode == 1
    gate = next(g for g in json.loads(shut.stdout)["gates"] if g["gate"] == "schedule")
    assert "Thanksgiving" in gate["reason"] and "next opening 2026-12-01 10:00 PST" in gate["reason"]
    friday = cli(office, "rita", "why", "production", "--ref", "main", "--at", "2026-12-04T12:00:00-08:00", "--json")
    assert friday.returncode == 1 and "Friday after 12:00" in friday.stdout
    naive = cli(office, "rita", "why", "production", "--ref", "main", "--at", "2026-12-04T12:00:00")
    assert naive.returncode == 1 and "time zone" in naive.stderr
    cal = cli(office, "rita", "calendar", "production", "--days", "8", "--json")
    assert cal.returncode == 0, cal.stderr
    spans = json.loads(cal.stdout)["spans"]
    assert any(s["open"] for s in spans) and any("weekend" in s["reason"] for s in spans)


def test_outside_the_window_a_plain_request_is_refused_with_the_next_opening(closed: GateWorld) -> None:
    r = closed.as_("rita", "POST", "/deployments", json={"environment": "production", "ref": "main"})
    assert r.status_code == 409
    assert "closed for deploys" in r.json()["message"] and "--when-open" in r.json()["fix"]
    assert closed.ok_as("ada", "GET", "/deployments") == []


@pytest.mark.server_process
def test_emergency_outside_the_window_needs_a_managers_approval(closed: GateWorld) -> None:
    no_reason = closed.as_(
        "rita", "POST", "/deployments", json={"environment": "production", "ref": "main", "emergency": True}
    )
    assert no_reason.status_code == 400
    r = cli(
        closed, "rita", "deploy", "production", "--ref", "main", "--emergency", "--reason", "checkout down", "--json"
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["state"] == "pending" and d["emergency"] and d["notes"].startswith("EMERGENCY: checkout down")
    wait_until(lambda: closed.server.deployment(d["id"])["gates"], what="gates evaluated")
    assert closed.as_("eve", "POST", f"/deployments/{d['id']}/approvals", json={}).status_code == 403
    assert closed.as_("rita", "POST", f"/deployments/{d['id']}/approvals", json={}).status_code == 403
    assert closed.server.deployment(d["id"])["state"] == "pending"
    closed.server.kill()  # the wait is durable: a SIGKILL and a restart in between change nothing
    closed.server.start()
    assert closed.server.deployment(d["id"])["state"] == "pending"
    assert cli(closed, "max", "approve", d["id"], "--comment", "go").returncode == 0
    done = closed.server.wait_finished(d["id"])
    assert done["state"] == "succeeded" and done["emergency"]
    gate = next(g for g in done["gates"] if g["gate"] == "schedule")
    assert gate["passed"] and "emergency: schedule bypassed" in gate["reason"] and "max" in gate["reason"]
    announce = next(
        s for s in closed.server.ok("GET", f"/deployments/{d['id']}/logs")["steps"] if s["name"] == "announce"
    )
    assert "EMERGENCY" in announce["message"]
    audit = closed.ok_as("ada", "GET", "/audit", params={"limit": 200})["entries"]
    approved = [e for e in audit if e["action"] == "deployment.approved" and e["subject"] == d["id"]]
    assert approved and approved[0]["actor"] == "max" and approved[0]["details"]["emergency"] is True
    requested = [e for e in audit if e["action"] == "deployment.requested" and e["subject"] == d["id"]]
    assert requested[0]["details"]["emergency"] is True and requested[0]["details"]["reason"] == "checkout down"


def test_freeze_closes_and_lifting_reopens(office: GateWorld) -> None:
    at = "2026-12-03T14:30:00-08:00"
    added = cli(
        office,
        "rita",
        "freeze",
        "add",
        "production",
        "--from",
        "2026-12-01T00:00:00-08:00",
        "--until",
        "2026-12-05T00:00:00-08:00",
        "--reason",
        "end-of-year freeze",
        "--json",
    )
    assert added.returncode == 0, added.stderr
    freeze = json.loads(added.stdout)
    why = cli(office, "rita", "why", "production", "--ref", "main", "--at", at, "--json")
    assert why.returncode == 1 and "end-of-year freeze" in why.stdout
    assert cli(office, "eve", "freeze", "add", "production", "--reason", "x").returncode == 1
    assert cli(office, "rita", "freeze", "lift", str(freeze["id"])).returncode == 0
    assert cli(office, "rita", "why", "production", "--ref", "main", "--at", at).returncode == 0


def gate_looks(deployment_id: str) -> int:
    """How many times the deployment's gate workflow has evaluated its gates (the server runs in this
    process: its engine is this process's DBOS)."""
    from dbos import DBOS

    from conveyor.engine.gating import gate_step, gate_workflow_id

    steps = DBOS.list_workflow_steps(gate_workflow_id(deployment_id), load_output=False)
    return sum(1 for s in steps if s["function_name"].endswith(gate_step.__qualname__))


def test_when_open_waits_for_the_window_then_starts_at_the_opening(tmp_path: Path) -> None:
    """The server's clock is the test's: it stands two seconds before the window opens (the waiting
    deployment looks again at each opening it is told of), then jumps to the opening."""
    opening = (datetime.now(UTC) + timedelta(minutes=5)).replace(second=0, microsecond=0)
    end = opening + timedelta(minutes=3)
    end_text = "24:00" if end.date() != opening.date() else end.strftime("%H:%M")
    window = f"{DAYS[opening.weekday()]} {opening:%H:%M}-{end_text}"
    schedule = f'schedule:\n  timezone: UTC\n  allow: ["{window}"]\n  weekends: open\n'
    clock = ControlledClock(opening - timedelta(seconds=2))
    worlds = make_gate_world(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", config(schedule), clock=clock)  # type: ignore[arg-type]
    gw = next(worlds)
    try:
        r = cli(gw, "rita", "deploy", "production", "--ref", "main", "--when-open", "--json")
        assert r.returncode == 0, r.stderr
        d = json.loads(r.stdout)
        assert d["state"] == "pending" and d["when_open"]
        gate = wait_until(
            lambda: next((g for g in gw.server.deployment(d["id"])["gates"] if g["gate"] == "schedule"), None),
            what="the schedule gate",
        )
        assert not gate["passed"] and gate["details"]["next_open"] == opening.isoformat()
        # it looks again when the window should open, by the server's clock, which stands still: it waits on
        wait_until(lambda: gate_looks(d["id"]) >= 3, what="the waiting deployment to look at its gates again")
        assert gw.server.deployment(d["id"])["state"] == "pending"
        clock.set(opening, running=True)
        done = gw.server.wait_finished(d["id"], timeout=60)
        assert done["state"] == "succeeded", done
        assert datetime.fromisoformat(done["started_at"]) >= opening
        assert datetime.fromisoformat(done["started_at"]) < opening + timedelta(seconds=30)
    finally:
        next(worlds, None)
