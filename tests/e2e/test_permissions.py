"""Who may do what: every role tries deploy, approve, tick, verify and override (an emergency
request that bypasses the schedule) on every environment. Refusals are 403 with the reason, change
nothing, and are audited. (Who may approve an override is in test_calendar_gate.py.)"""

from __future__ import annotations

import pytest
from tests.e2e.gates_world import GateWorld

pytestmark = pytest.mark.sqlite_only  # see SQLITE_ONLY_DOC in tests/conftest.py

ENVS = ("development", "staging", "production")
ROLE_USER = {"engineer": "eve", "release_manager": "ron", "manager": "max", "admin": "ada"}

# (action, environment) -> roles allowed
ALLOWED = {
    ("deploy", "development"): {"engineer", "release_manager", "manager"},
    ("deploy", "staging"): {"engineer", "release_manager", "manager"},
    ("deploy", "production"): {"release_manager"},
    ("approve", "production"): {"release_manager"},
    ("tick", "production"): {"release_manager"},
    ("verify", "development"): {"engineer", "release_manager", "manager"},
    ("verify", "staging"): {"engineer", "release_manager", "manager"},
    ("verify", "production"): {"release_manager"},
    ("override", "development"): {"engineer", "release_manager", "manager"},
    ("override", "staging"): {"engineer", "release_manager", "manager"},
    ("override", "production"): {"release_manager"},
}


def snapshot(gw: GateWorld, production: str) -> tuple[int, int, int, int]:
    """What a refused action must leave alone: deployments, approvals, ticks, sign-offs."""
    from sqlalchemy import func, select

    from conveyor.store.db import Database
    from conveyor.store.tables import approvals, checklist_ticks, deployments, verifications

    db = Database(gw.server.database_url)
    with db.read() as conn:
        values = tuple(
            int(conn.execute(select(func.count()).select_from(t)).scalar() or 0)
            for t in (deployments, approvals, checklist_ticks, verifications)
        )
    db.dispose()
    return values  # type: ignore[return-value]


def forbidden_entries(gw: GateWorld) -> list[dict]:
    audit = gw.ok_as("ada", "GET", "/audit", params={"limit": 10000})["entries"]
    return [e for e in audit if e["action"] == "forbidden"]


def test_role_environment_action_matrix(gw: GateWorld) -> None:
    # a succeeded deployment in development and staging (to verify), and a pending one per
    # environment requested by rita (to approve and tick)
    for env in ("development", "staging"):
        d = gw.ok_as("eve", "POST", "/deployments", json={"environment": env, "ref": "main"})
        assert gw.server.wait_finished(d["id"])["state"] == "succeeded"
    pending = {
        "production": gw.ok_as("rita", "POST", "/deployments", json={"environment": "production", "ref": "main"})["id"]
    }
    for env in ("development", "staging"):  # no gates: these do not wait; approving/ticking them is refused
        pending[env] = gw.ok_as("rita", "POST", "/deployments", json={"environment": env, "ref": "main"})["id"]

    outcomes: dict[tuple[str, str, str], int] = {}
    for role, user in ROLE_USER.items():
        for env in ENVS:
            attempts = {
                "deploy": lambda u=user, e=env: gw.as_(
                    u, "POST", "/deployments", json={"environment": e, "ref": "main"}
                ),
                "approve": lambda u=user, e=env: gw.as_(u, "POST", f"/deployments/{pending[e]}/approvals", json={}),
                "tick": lambda u=user, e=env: gw.as_(
                    u, "POST", f"/deployments/{pending[e]}/checklist", json={"item": "rollback_plan"}
                ),
                "verify": lambda u=user, e=env: gw.as_(
                    u, "POST", "/verifications", json={"environment": e, "ref": "main"}
                ),
                "override": lambda u=user, e=env: gw.as_(
                    u,
                    "POST",
                    "/deployments",
                    json={"environment": e, "ref": "main", "emergency": True, "reason": "incident 42"},
                ),
            }
            for action, attempt in attempts.items():
                allowed = role in ALLOWED.get((action, env), set())
                before, refusals = snapshot(gw, pending["production"]), len(forbidden_entries(gw))
                r = attempt()
                outcomes[(role, env, action)] = r.status_code
                if allowed:
                    # verify in production has nothing to sign off (no production run yet): 409, not 403
                    assert r.status_code in (201, 409), (role, env, action, r.text)
                    continue
                assert r.status_code == 403, (role, env, action, r.status_code, r.text)
                assert r.json()["message"], (role, env, action)
                assert snapshot(gw, pending["production"]) == before, (role, env, action, "changed something")
                entries = forbidden_entries(gw)
                assert len(entries) == refusals + 1
                assert entries[0]["actor"] == user and entries[0]["details"]["attempted"] == action
    assert outcomes[("release_manager", "production", "approve")] == 201
    assert outcomes[("engineer", "production", "deploy")] == 403
    assert outcomes[("admin", "staging", "deploy")] == 403


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_editing_the_audit_log_by_hand_is_detected(gw: GateWorld) -> None:
    import subprocess
    import sys

    from sqlalchemy import text

    from conveyor.store.db import Database

    d = gw.ok_as("eve", "POST", "/deployments", json={"environment": "staging", "ref": "main"})
    gw.server.wait_finished(d["id"])  # its entries are all written
    env = gw.env_for("ada")
    ok = subprocess.run([sys.executable, "-m", "conveyor", "audit", "verify"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "intact" in ok.stdout
    db = Database(gw.server.database_url)
    with db.begin() as conn:
        victim = conn.execute(text("SELECT id FROM audit_log ORDER BY id LIMIT 1 OFFSET 2")).scalar()
        assert victim is not None
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = :id"), {"id": victim})
    db.dispose()
    bad = subprocess.run([sys.executable, "-m", "conveyor", "audit", "verify"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and f"entry {victim}" in bad.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "conveyor", "audit", "--json", "--limit", "3"], env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0 and len(__import__("json").loads(listed.stdout)) == 3
