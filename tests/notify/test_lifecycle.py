"""A production deployment's life as its notifiers tell it: requested, waiting for approval (the
two release managers mentioned), approved, each step, complete with the commits it brings; the
same life as GitHub deployment statuses, signed webhooks and the approvers' mail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import wait_until
from tests.e2e.harness import commit
from tests.notify.world import World, make_world

pytestmark = pytest.mark.sqlite_only  # see SQLITE_ONLY_DOC in tests/conftest.py

TICKET = "<https://tickets.example.com/browse/PROJ-9|PROJ-9>"


@pytest.fixture
def world_on_each_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[World]:
    """The world on SQLite, and again on PostgreSQL (skipped with the reason when it is not reachable)."""
    yield from make_world(tmp_path, monkeypatch, database_url=database_url)


def approve_when_waiting(world: World, deployment: dict[str, Any]) -> None:
    wait_until(lambda: world.server.deployment(deployment["id"])["gates"], what="gates evaluated")
    world.as_("ron", "POST", f"/deployments/{deployment['id']}/approvals", json={})


def test_approved_production_deploy_is_told_in_order(world_on_each_db: World) -> None:
    world = world_on_each_db
    first = world.deploy("production")
    approve_when_waiting(world, first)
    assert world.server.wait_finished(first["id"])["state"] == "succeeded"
    world.all_delivered()
    before = len(world.slack.log())
    commit(world.repo, {"search.txt": "search\n"}, "Add search (#12)")
    commit(world.repo, {"cart.txt": "total\n"}, "Fix the checkout total PROJ-7")
    second = world.deploy("production", ticket="PROJ-9")
    approve_when_waiting(world, second)
    assert world.server.wait_finished(second["id"])["state"] == "succeeded"
    world.all_delivered()
    assert world.slack.problems == [] and world.github.problems == [] and world.hooks.problems == []

    log = world.slack.log()[before:]
    sha = second["sha"][:7]
    dash = f"<{world.server.url}/deployments/{second['id']}|Dashboard> · <https://grafana.example.com/d/shop|Grafana>"
    parent = log[0]
    ts = log[1][1]
    assert ts is not None
    head = "Deployment of shop"

    def status(mark: str, release: str, words: str, steps: str) -> tuple[str, str | None, str]:
        return (
            "update",
            ts,
            f"{mark} {head} {release} to production by <@U0ALICE>: {words}\n{steps}\nTicket: {TICKET} · {dash}",
        )

    # the request itself carries the links: the ticket, the dashboard, the environment's monitoring
    assert parent == (
        "post",
        None,
        f"🚀 {head} main ({sha}) to production by <@U0ALICE>: requested\n○ prepare · ○ tag · ○ rollout · ○ announce\n"
        f"Ticket: {TICKET} · {dash}",
    )
    assert world.slack.messages[ts]["text"].startswith("✅ Deployment of shop v0.2.0 to production")
    approval = (
        f"⏳ Approval needed: shop main ({sha}) to production, requested by <@U0ALICE>\n"
        "- Approvers: <@U0RON> <@U0ROSA>\n"
        f"- Approve: <{world.server.url}/deployments/{second['id']}|on the dashboard> or "
        f"`conveyor approve {second['id']}`"
    )
    assert log[1:] == [
        status("⏳", f"main ({sha})", "waiting for approval", "○ prepare · ○ tag · ○ rollout · ○ announce"),
        ("post", ts, approval),
        status("▶️", f"main ({sha})", "running", "○ prepare · ○ tag · ○ rollout · ○ announce"),
        status("▶️", f"main ({sha})", "running", "✓ prepare · ○ tag · ○ rollout · ○ announce"),
        status("▶️", "v0.2.0", "running", "✓ prepare · ✓ tag · ○ rollout · ○ announce"),
        status("▶️", "v0.2.0", "running", "✓ prepare · ✓ tag · ✓ rollout · ○ announce"),
        status("▶️", "v0.2.0", "running", "✓ prepare · ✓ tag · ✓ rollout · ✓ announce"),
        log[8],  # succeeded in Ns
        (
            "post",
            ts,
            "✅ Deployment complete: shop v0.2.0 to production\n"
            "- Add search, <https://github.com/acme/shop/pull/12|#12>\n"
            "- Fix the checkout total <https://tickets.example.com/browse/PROJ-7|PROJ-7>\n"
            f"- Ticket: {TICKET}\n"
            "- Deployed by: <@U0ALICE>\n"
            f"- Links: {dash}",
        ),
    ]
    assert log[8][0:2] == ("update", ts) and log[8][2].startswith(f"✅ {head} v0.2.0 to production by <@U0ALICE>: succ")
    # the completion reply is also sent to the channel
    done = "✅ Deployment complete"
    completion = [c for c in world.slack.calls if c.json and c.json.get("text", "").startswith(done)]
    assert [c.json["reply_broadcast"] for c in completion] == [True, True]

    # GitHub: one deployment per deploy, statuses in order
    deployments = list(world.github.deployments.items())
    assert [(d["ref"], d["environment"], d["repo"]) for _, d in deployments] == [
        (first["sha"], "production", "acme/shop"),
        (second["sha"], "production", "acme/shop"),
    ]
    assert [(i, s["state"]) for i, s in world.github.statuses] == [
        (1000, "queued"),
        (1000, "in_progress"),
        (1000, "success"),
        (1001, "queued"),
        (1001, "in_progress"),
        (1001, "success"),
    ]
    assert world.github.statuses[-1][1]["environment_url"] == "https://shop.example.com"

    # mail: each approval request to the two release managers and the list
    assert [sorted(to) for to, _ in world.mailbox.mails] == [
        ["releases@example.com", "ron@example.com", "rosa@example.com"]
    ] * 2
    subject = f"⏳ Approval needed: shop main ({sha}) to production, requested by @alice"
    assert world.mailbox.mails[1][1]["Subject"] == subject

    # the signed webhook: the events it asked for, the changes listed
    hooks = [(c.headers["X-Conveyor-Event"], c.json["deployment"]["id"]) for c in world.hooks.calls]
    assert hooks == [(e, d["id"]) for d in (first, second) for e in ("requested", "succeeded")]
    assert [c["subject"] for c in world.hooks.calls[-1].json["changes"]] == [
        "Add search",
        "Fix the checkout total PROJ-7",
    ]
    assert len({c.headers["X-Conveyor-Delivery"] for c in world.hooks.calls}) == 4
    # the request as plain text has the same links
    dashboard = f"{world.server.url}/deployments/{second['id']}"
    assert world.hooks.calls[-2].json["text"] == (
        f"🚀 Deployment requested: shop main ({sha}) to production by @alice\n"
        "- Ticket: PROJ-9 (https://tickets.example.com/browse/PROJ-9)\n"
        f"- Links: Dashboard ({dashboard}) · Grafana (https://grafana.example.com/d/shop)"
    )
    assert world.hooks.calls[-2].json["deployment"]["dashboard_url"] == dashboard


def test_the_deployment_page_lists_each_delivery(world: World) -> None:
    from conveyor.auth.users import User
    from conveyor.web.deployment import _view
    from conveyor.web.pages import fragment

    d = world.deploy("staging")
    assert world.server.wait_finished(d["id"])["state"] == "succeeded"
    rows = world.all_delivered()
    context, _ = _view(world.server.runner.runtime, User(1, "alice", ("admin",)), d["id"])  # type: ignore[union-attr]
    html = fragment("_notifications.html", context)
    assert html.count('class="notification delivered"') == len(rows) == 7
    assert "posted to the incoming webhook" in html and "✅ Deployment complete" in html
