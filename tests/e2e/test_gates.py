"""Gates part 1 end to end: a production deployment waits in pending, `why` names what is
missing, evidence arrives (GitHub reviews, `checks report`, a real staging deploy, approvals,
checklist ticks) and the deployment starts by itself; refusals change nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.conftest import wait_until
from tests.e2e.gates_world import GateWorld
from tests.e2e.harness import commit, git

pytestmark = pytest.mark.sqlite_only  # see SQLITE_ONLY_DOC in tests/conftest.py


def cli(world: GateWorld, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args], env=world.env_for(user), capture_output=True, text=True, timeout=120
    )


def staging_deploy(world: GateWorld, ref: str) -> dict:
    d = world.ok_as("eve", "POST", "/deployments", json={"environment": "staging", "ref": ref})
    return world.server.wait_finished(d["id"])


def test_production_waits_for_every_gate_then_starts_by_itself(gw: GateWorld) -> None:
    sha = git(gw.repo, "rev-parse", "main")
    why = cli(gw, "rita", "why", "production", "--ref", "main", "--json")
    assert why.returncode == 1
    gates = {g["gate"]: g for g in json.loads(why.stdout)["gates"]}
    assert set(gates) == {"deployers", "reviews", "checks", "staging_verified", "approval", "checklist"}
    assert gates["deployers"]["passed"] and not gates["reviews"]["passed"]
    assert "has not been deployed to staging" in gates["staging_verified"]["reason"]

    pending = gw.ok_as("rita", "POST", "/deployments", json={"environment": "production", "ref": "main"})
    assert pending["state"] == "pending"
    d = wait_until(lambda: (x := gw.server.deployment(pending["id"]))["gates"] and x, what="gates evaluated")
    assert not gw.gate(d, "approval")["passed"]

    # reviews by GitHub webhook: the author's own approval does not count
    gw.review(sha, "dev", author="dev")
    gw.review(sha, "bob")
    d = wait_until(
        lambda: (x := gw.server.deployment(pending["id"])) and "bob" in str(gw.gate(x, "reviews")) and x,
        what="review recorded",
    )
    assert "author's own approval does not count" in gw.gate(d, "reviews")["reason"]
    gw.review(sha, "carol")
    # checks by `conveyor checks report`, from CI's reporter account
    for name in ("tests", "lint", "security"):
        r = cli(gw, "ci", "checks", "report", "--sha", sha, "--name", name, "--state", "success")
        assert r.returncode == 0, r.stderr
    # staging by a real staging deploy
    assert staging_deploy(gw, sha)["state"] == "succeeded"
    # approvals from two release managers; the requester's own is refused and audited
    own = gw.as_("rita", "POST", f"/deployments/{pending['id']}/approvals", json={})
    assert own.status_code == 403 and "cannot approve" in own.json()["message"]
    eng = cli(gw, "eve", "approve", pending["id"])
    assert eng.returncode == 1 and "may not approve" in eng.stderr
    assert cli(gw, "ron", "approve", pending["id"], "--comment", "looks good").returncode == 0
    assert cli(gw, "rosa", "approve", pending["id"]).returncode == 0
    # the gates are evaluated again in the background the moment an approval arrives
    d = wait_until(
        lambda: (x := gw.server.deployment(pending["id"])) and gw.gate(x, "approval")["passed"] and x,
        what="the approvals to count",
    )
    assert d["state"] == "pending"
    # the checklist; the last tick lets it start by itself
    r = cli(gw, "rita", "checklist", pending["id"], "--tick", "rollback_plan", "--tick", "stakeholders_notified")
    assert r.returncode == 0, r.stderr
    done = gw.server.wait_finished(pending["id"])
    assert done["state"] == "succeeded" and done["version"] == "v0.1.0"
    assert all(g["passed"] for g in done["gates"])
    audit = gw.ok_as("ada", "GET", "/audit", params={"limit": 500})["entries"]
    actions = [e["action"] for e in audit]
    assert "deployment.approved" in actions and "checklist.ticked" in actions and "deployment.gates_passed" in actions
    refused = [e for e in audit if e["action"] == "forbidden"]
    assert {e["actor"] for e in refused} == {"rita", "eve"}


def test_a_failing_check_blocks_the_start_and_approvals_do_not_carry_over(gw: GateWorld) -> None:
    sha_a = git(gw.repo, "rev-parse", "main")
    for reviewer in ("bob", "carol"):
        gw.review(sha_a, reviewer)
    for name in ("tests", "lint", "security"):
        gw.ok_as("ci", "POST", "/checks", json={"sha": sha_a, "name": name, "state": "success"})
    staging_deploy(gw, sha_a)
    first = gw.ok_as("rita", "POST", "/deployments", json={"environment": "production", "ref": sha_a})
    gw.ok_as("ron", "POST", f"/deployments/{first['id']}/approvals", json={})
    gw.ok_as("rosa", "POST", f"/deployments/{first['id']}/approvals", json={})
    # lint turns red after the approvals: the deployment stays pending, `why` says so
    gw.ok_as("ci", "POST", "/checks", json={"sha": sha_a, "name": "lint", "state": "failure"})
    for item in ("rollback_plan", "stakeholders_notified"):
        gw.ok_as("rita", "POST", f"/deployments/{first['id']}/checklist", json={"item": item})
    d = wait_until(
        lambda: (x := gw.server.deployment(first["id"])) and "failed: lint" in gw.gate(x, "checks")["reason"] and x,
        what="the red check to show",
    )
    assert d["state"] == "pending"
    why = cli(gw, "rita", "why", "production", "--ref", sha_a)
    assert why.returncode == 1 and "failed: lint" in why.stdout

    # approvals for sha A never count for sha B
    gw.ok_as("rita", "POST", f"/deployments/{first['id']}/cancel")
    sha_b = commit(gw.repo, {"app.txt": "b\n"}, "b")
    second = gw.ok_as("rita", "POST", "/deployments", json={"environment": "production", "ref": sha_b})
    d = wait_until(lambda: (x := gw.server.deployment(second["id"]))["gates"] and x, what="gates evaluated")
    assert gw.gate(d, "approval")["details"]["approved_by"] == []
    assert not gw.gate(d, "reviews")["passed"] and not gw.gate(d, "checks")["passed"]


def test_a_pending_deployment_expires_with_a_reason(gw: GateWorld, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = (
        (gw.repo / "conveyor.yml").read_text().replace("      checklist:", "      expire_after: 2s\n      checklist:")
    )
    commit(gw.repo, {"conveyor.yml": config}, "short expiry")
    preview = gw.ok_as("ada", "POST", "/services", json={"source": str(gw.repo), "dry_run": True})
    assert preview["changes"] == ["environments.production.gates.expire_after"]
    gw.ok_as("ada", "POST", "/services", json={"source": str(gw.repo), "confirm_diff": preview["confirm"]})
    d = gw.ok_as("rita", "POST", "/deployments", json={"environment": "production", "ref": "main"})
    done = gw.server.wait_finished(d["id"], timeout=30)
    assert done["state"] == "cancelled" and done["reason"].startswith("expired after waiting 2s for:")
    assert "approval" in done["reason"]
