"""The emergency hotfix of the process document as its notifiers tell it: production is closed
(its schedule), so production's first release and then a hotfix of it go out as emergencies,
approved by a release manager and the schedule's emergency approver; every message is in the 🚨
form with the reason. The hotfix conflicts with main, so its merge-back is due: announced, with
the branch and the conflicting file, in the hotfix deployment's Slack thread, by signed webhook
and by mail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import wait_until
from tests.e2e.harness import commit, git
from tests.notify.world import APPROVAL, World, make_world

CLOSED = APPROVAL + (
    'schedule: {timezone: UTC, weekends: open, deny: ["Mon-Sun 00:00-24:00"], emergency: {approvers: [manager]}}\n'
)
NOTIFY = """\
- slack: {token: "${T_SLACK_TOKEN}", channel: "#deployments"}
- webhook: {url: "WEBHOOK_URL", secret: "${T_HOOK_SECRET}", events: [requested, succeeded, merge_back_due]}
- email: {to: [releases@example.com], events: [merge_back_due]}
"""
REASON = "checkout total is wrong"


@pytest.fixture
def closed_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from make_world(
        tmp_path,
        monkeypatch,
        production_notify=NOTIFY,
        staging_notify="[]\n",
        production_gates=CLOSED,
        tail="hotfix: {merge_back: [main]}\n",
        users={"max": ["manager"]},
    )


def emergency(world: World, ref: str, reason: str) -> dict[str, Any]:
    d = world.deploy("production", ref, emergency=True, reason=reason)
    world.approve(d, "ron", "max")  # a release manager (approval gate), a manager (the closed schedule)
    done = world.server.wait_finished(d["id"])
    assert done["state"] == "succeeded", done
    return done


def test_an_emergency_hotfix_is_told_in_the_emergency_form_and_its_merge_back_due(closed_world: World) -> None:
    world = closed_world
    commit(world.repo, {"checkout.txt": "checkout v1\n"}, "Checkout v1")
    assert emergency(world, "main", "launch before the sale")["version"] == "v0.1.0"
    world.all_delivered()
    before = len(world.slack.log())
    # main moves on and rewrites checkout; the fix is made on the production release
    commit(world.repo, {"checkout.txt": "checkout v2, rewritten\n"}, "Rewrite checkout")
    git(world.repo, "branch", "hotfix/total", "v0.1.0")
    tree = world.repo.parent / "hotfix-tree"
    git(world.repo, "worktree", "add", "-q", str(tree), "hotfix/total")
    commit(tree, {"checkout.txt": "checkout v1, total fixed\n"}, "Fix the checkout total")
    git(world.repo, "worktree", "remove", "--force", str(tree))

    hotfix = emergency(world, "hotfix/total", REASON)
    assert hotfix["version"] == "v0.1.1" and hotfix["emergency"], hotfix
    due = wait_until(
        lambda: len([r for r in world.deliveries(hotfix["id"]) if r.event == "merge_back_due"]) == 3,
        what="the merge-back due planned for each notifier",
    )
    assert due
    world.all_delivered()
    assert world.slack.problems == [] and world.hooks.problems == []

    sha = hotfix["sha"][:7]
    dashboard = f"{world.server.url}/deployments/{hotfix['id']}"
    dash = f"<{dashboard}|Dashboard> · <https://grafana.example.com/d/shop|Grafana>"
    log = world.slack.log()[before:]
    ts = log[1][1]
    siren = "🚨 EMERGENCY "
    assert log[0] == (
        "post",
        None,
        f"{siren}🚀 Deployment of shop hotfix/total ({sha}) to production by <@U0ALICE>: requested\n"
        f"Emergency: {REASON}\n○ prepare · ○ tag · ○ rollout · ○ announce\n{dash}",
    )
    replies = [text for kind, thread, text in log if kind == "post" and thread == ts]
    assert replies == [
        f"{siren}⏳ Approval needed: shop hotfix/total ({sha}) to production, requested by <@U0ALICE>\n"
        "- Approvers: @max <@U0RON> <@U0ROSA>\n"  # the emergency approver too
        f"- Emergency: {REASON}\n"
        f"- Approve: <{dashboard}|on the dashboard> or `conveyor approve {hotfix['id']}`",
        f"{siren}Deployment complete: shop v0.1.1 to production\n"
        "- Fix the checkout total\n"
        f"- Emergency: {REASON}\n"
        "- Deployed by: <@U0ALICE>\n"
        f"- Links: {dash}",
        f"{siren}🔀 Merge-back due: shop hotfix v0.1.1 into main\n"
        "- Conflicts: checkout.txt\n"
        "- Deployed to production by <@U0ALICE>\n"
        "- Merge it into main by hand and deploy main: that clears it\n"
        f"- Links: {dash}",
    ]
    # every message of it, whatever its event, in the 🚨 form (as written for each notifier)
    texts = {(r.event, r.text.split("\n")[0]) for r in world.deliveries(hotfix["id"])}
    assert {e for e, _ in texts} >= {"requested", "approval", "started", "step", "succeeded", "merge_back_due"}
    assert [t for t in texts if not t[1].startswith(siren)] == []
    # the deployment's message says so in place, and the merge-back went to the channel as well
    assert world.slack.messages[ts]["text"].startswith(
        f"{siren}🔀 Deployment of shop v0.1.1 to production by <@U0ALICE>: succeeded; merge-back into main due\n"
    )
    broadcast = [c.json for c in world.slack.calls if c.json and "Merge-back due" in c.json.get("text", "")]
    assert [b["reply_broadcast"] for b in broadcast] == [True]

    # the signed webhook: the emergency and its reason, the merge-back's branch and files
    hooks = [c.json for c in world.hooks.calls if c.json["deployment"]["id"] == hotfix["id"]]
    assert [h["event"] for h in hooks] == ["requested", "succeeded", "merge_back_due"]
    assert {(h["deployment"]["emergency"], h["deployment"]["emergency_reason"]) for h in hooks} == {(True, REASON)}
    assert hooks[-1]["merge_back"] == {
        "branch": "main",
        "files": ["checkout.txt"],
        "reason": "merge-back due: main conflicts in checkout.txt",
    }
    assert hooks[-1]["text"].startswith(f"{siren}🔀 Merge-back due: shop hotfix v0.1.1 into main\n")

    # mail: only the merge-back (this list asked for nothing else)
    ((to, mail),) = world.mailbox.mails
    assert to == ["releases@example.com"]
    assert mail["Subject"] == f"{siren}🔀 Merge-back due: shop hotfix v0.1.1 into main"
