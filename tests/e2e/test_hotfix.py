"""The emergency hotfix of the process document, end to end with real git repositories and a
bare remote: production serves v0.3.0; `conveyor hotfix start`; a fix; one review; deployed as
v0.3.1 as an emergency outside the window with a manager's approval; merged back into main and
develop and pushed; the next release from main is v0.4.0 and contains the fix. Then: a main that
conflicts (merge-back due, production refuses main until it is resolved or overridden), and a
hotfix/ branch cut from develop (no fast track)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.e2e.harness import git
from tests.e2e.hotfix_world import SATURDAY, WEDNESDAY, HotfixWorld, make_hotfix_world


@pytest.fixture
def hw(tmp_path: Path) -> Iterator[HotfixWorld]:
    yield from make_hotfix_world(tmp_path)


def gate(answer: dict[str, object], name: str) -> dict[str, object]:
    gates = answer["gates"]
    assert isinstance(gates, list)
    return next(g for g in gates if g["gate"] == name)


def test_hotfix_from_the_production_tag_to_v0_3_1_merged_back_and_in_v0_4_0(hw: HotfixWorld) -> None:
    v030 = git(hw.repo, "rev-parse", "v0.3.0^{commit}")
    # main and develop move on while production serves v0.3.0
    hw.on_main({"feature-b.txt": "b\n"}, "Feature B")
    hw.on_branch("develop", {"feature-d.txt": "d\n"}, "Feature D")

    started = hw.cli("eve", "hotfix", "start", "production", "fix-checkout")
    assert started.returncode == 0, started.stderr
    assert "hotfix/fix-checkout created at v0.3.0" in started.stdout and "pushed to origin" in started.stdout
    assert "conveyor deploy production --ref hotfix/fix-checkout" in started.stdout  # the next steps
    assert git(hw.remote, "rev-parse", "hotfix/fix-checkout") == v030  # pushed to the bare remote

    fix = hw.on_branch("hotfix/fix-checkout", {"checkout.txt": "checkout v3, fixed\n"}, "Fix checkout")
    hw.gw.review(fix, "rita")  # one review
    hw.clock.set(SATURDAY, running=True)  # outside the window: an emergency

    why = hw.cli("rita", "why", "production", "--ref", "hotfix/fix-checkout", "--json")
    answer = json.loads(why.stdout)
    facts = gate(answer, "hotfix")["details"]
    assert facts == {
        **facts,
        "hotfix": True,
        "base": "v0.3.0",
        "commits": 1,
        "reviews_needed": 1,
    }, facts
    reviews = gate(answer, "reviews")
    assert reviews["passed"] and reviews["details"]["needed"] == 1, reviews  # type: ignore[index]
    assert not gate(answer, "schedule")["passed"]

    done = hw.deploy("hotfix/fix-checkout", reviewers=(), emergency=True, reason="checkout down")
    assert done["version"] == "v0.3.1" and done["emergency"], done
    assert git(hw.remote, "rev-parse", "v0.3.1^{commit}") == fix  # the tag is pushed

    for branch in ("main", "develop"):
        merged = hw.wait_merge_back(branch, "merged")
        assert "pushed" in merged["reason"], merged
        assert hw.remote_has(fix, branch), f"origin's {branch} lacks the fix"
        head = git(hw.remote, "log", "-1", "--format=%an <%ae>%n%s", branch)
        assert head == f"Conveyor <conveyor@localhost>\nMerge hotfix v0.3.1 into {branch}", head
    assert (hw.repo / "checkout.txt").read_text() == "checkout v3, fixed\n"  # the checked-out main moved too
    assert hw.merge_backs() == []  # nothing pending

    hw.clock.set(WEDNESDAY + timedelta(days=7), running=True)
    nxt = hw.deploy("main")
    assert nxt["version"] == "v0.4.0", nxt
    assert hw.remote_has(fix, "v0.4.0")


def test_a_conflicting_main_is_due_and_production_refuses_it_until_resolved_or_overridden(hw: HotfixWorld) -> None:
    hw.on_main({"checkout.txt": "checkout v4 rewritten\n"}, "Rewrite checkout")  # conflicts with the fix
    assert hw.cli("eve", "hotfix", "start", "production", "fix").returncode == 0
    fix = hw.on_branch("hotfix/fix", {"checkout.txt": "checkout v3, fixed\n"}, "Fix checkout")
    assert hw.deploy("hotfix/fix", reviewers=("rita",))["version"] == "v0.3.1"

    due = hw.wait_merge_back("main", "due")
    assert due["reason"] == "merge-back due: main conflicts in checkout.txt" and due["files"] == ["checkout.txt"]
    hw.wait_merge_back("develop", "merged")
    assert not hw.remote_has(fix, "main")  # nothing was pushed to main
    status = hw.cli("rita", "status")
    assert "merge-back due: main conflicts in checkout.txt" in status.stdout, status.stdout

    main = git(hw.repo, "rev-parse", "main")
    refused = hw.gw.as_("rita", "POST", "/deployments", json={"environment": "production", "ref": "main"})
    assert refused.status_code == 409, refused.text
    message = refused.json()["message"]
    assert "missing commits" in message and fix[:7] in message and "Fix checkout" in message, message
    assert "hotfix v0.3.1 not merged back into main" in message and "conveyor allow-missing" in message
    blocked = json.loads(hw.cli("rita", "why", "production", "--ref", "main", "--json").stdout)
    assert not gate(blocked, "history")["passed"] and "missing commits" in str(gate(blocked, "history")["reason"])
    staging = json.loads(hw.cli("rita", "why", "staging", "--ref", "main", "--json").stdout)
    assert "history" not in {g["gate"] for g in staging["gates"]}  # staging serves nothing yet: nothing missing

    # overridden: an engineer may not, a release manager may with a reason (audited)
    eve = hw.cli("eve", "allow-missing", "production", "--ref", "main", "--reason", "rewritten anyway")
    assert eve.returncode == 1 and "release manager" in eve.stderr, eve.stderr
    ok = hw.cli("rita", "allow-missing", "production", "--ref", "main", "--reason", "v4 rewrites checkout", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["missing"] == [fix]
    allowed = json.loads(hw.cli("rita", "why", "production", "--ref", "main", "--json").stdout)
    assert "history" not in {g["gate"] for g in allowed["gates"]}, allowed
    assert main == git(hw.repo, "rev-parse", "main")

    # resolved: the conflict merged by hand on main; its deploy (to staging) clears the item
    git(hw.repo, "merge", "-q", "hotfix/fix", "-m", "Merge hotfix", "-X", "ours")
    resolved = git(hw.repo, "rev-parse", "main")
    d = hw.gw.ok_as("rita", "POST", "/deployments", json={"environment": "staging", "ref": "main"})
    assert hw.gw.server.wait_finished(d["id"])["state"] == "succeeded"
    assert hw.merge_backs() == []
    assert hw.wait_merge_back("main", "cleared")["reason"].startswith(f"main at {resolved[:12]} contains v0.3.1")
    clear = json.loads(hw.cli("rita", "why", "production", "--ref", "main", "--json").stdout)
    assert "history" not in {g["gate"] for g in clear["gates"]}


def test_a_hotfix_branch_cut_from_develop_gets_no_fast_track(hw: HotfixWorld) -> None:
    hw.on_branch("develop", {"feature-d.txt": "d\n"}, "Feature D")
    git(hw.repo, "branch", "hotfix/x", "develop")
    wrong = hw.on_branch("hotfix/x", {"checkout.txt": "fixed\n"}, "Fix on develop", push=False)
    hw.gw.review(wrong, "rita")

    answer = json.loads(hw.cli("rita", "why", "production", "--ref", "hotfix/x", "--json").stdout)
    reviews = gate(answer, "reviews")
    assert not reviews["passed"] and reviews["details"]["needed"] == 2, reviews  # type: ignore[index]
    claim = gate(answer, "hotfix")
    assert not claim["passed"] and "from develop" in str(claim["reason"]), claim
    refused = hw.gw.as_("rita", "POST", "/deployments", json={"environment": "production", "ref": "hotfix/x"})
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert "hotfix/x is not a hotfix" in body["message"] and body["fix"] == "conveyor hotfix start production x"
    by_sha = json.loads(hw.cli("rita", "why", "production", "--ref", wrong, "--json").stdout)
    assert gate(by_sha, "reviews")["details"]["needed"] == 2  # type: ignore[index]

    # the same judgement by ancestry: a proper hotfix gets one review however it is named
    assert hw.cli("eve", "hotfix", "start", "production", "y").returncode == 0
    right = hw.on_branch("hotfix/y", {"checkout.txt": "fixed\n"}, "Fix on the release")
    for ref in ("hotfix/y", right):
        fast = json.loads(hw.cli("rita", "why", "production", "--ref", ref, "--json").stdout)
        assert gate(fast, "reviews")["details"]["needed"] == 1, ref  # type: ignore[index]
