"""A production deploy from the dashboard that is blocked (two approvals and the checklist), then
approved by two release managers in two separate browser contexts, and then runs by itself while
the requester's page, open all along, shows it live."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pw = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
expect = pw.expect

from tests.browser.conftest import screenshot  # noqa: E402
from tests.browser.flows import LONG, deploy_staging, matches, pick_ref, state  # noqa: E402
from tests.browser.world import World, make_world  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    for world in make_world(tmp_path_factory.mktemp("production")):
        deploy_staging(world, "main")  # so that staging_verified passes
        yield world


def test_a_blocked_production_deploy_runs_after_two_approvals(world: World, sign_in: Callable[[str, str], Any]) -> None:
    rita = sign_in(world.url, "rita")
    rita.locator("[data-service=shop]").get_by_role("link", name="Deploy to Production").click()
    pick_ref(rita, "main")
    expect(rita.get_by_test_id("verdict")).to_contain_text("Blocked")
    expect(rita.locator("#gates [data-gate=staging_verified]")).to_have_class(matches("passed"))
    expect(rita.locator("#gates [data-gate=approval]")).to_have_class(matches("blocked"))
    rita.get_by_label("Notes").fill("first production release")
    rita.get_by_label("Ticket").fill("PROJ-124")
    rita.get_by_label("rollback plan").check()
    rita.get_by_label("stakeholders notified").check()
    screenshot(rita, "deploy-form.png")
    rita.get_by_role("button", name="Review deployment").click()
    expect(rita.locator(".plan")).to_contain_text("waits until every gate below passes")
    rita.get_by_role("button", name="Confirm Deployment").click()
    expect(state(rita)).to_have_text("pending")
    approval = rita.locator("[data-testid=gates] [data-gate=approval] .reason")
    expect(approval).to_contain_text("waiting for 2 more approval(s)", timeout=LONG)
    expect(rita.get_by_role("button", name="Approve")).to_have_count(0)  # she asked for it
    deployment_url = rita.url

    ron = sign_in(world.url, "ron")
    waiting = ron.get_by_test_id("waiting")
    expect(waiting).to_contain_text("needs your approval")
    waiting.get_by_role("link").first.click()
    ron.get_by_role("button", name="Approve").click()
    expect(ron.locator(".actions")).to_contain_text("You approved this deployment.")
    expect(state(ron)).to_have_text("pending")
    expect(approval).to_contain_text("1 more", timeout=LONG)  # rita's page, live

    rosa = sign_in(world.url, "rosa")
    rosa.goto(deployment_url)
    rosa.get_by_role("button", name="Approve").click()

    # nobody presses anything again: rita's page, open all along, sees it run and finish
    expect(state(rita)).to_have_text("succeeded", timeout=LONG)
    expect(rita.get_by_test_id("approved-by")).to_have_text("ron, rosa")
    expect(rita.locator("[data-live-part=panel] .version").first).to_have_text("v0.1.0")
    expect(rita.get_by_test_id("log-migrate")).to_contain_text("migrate ok")
    expect(rosa.locator(".actions")).to_contain_text("You approved this deployment.")
