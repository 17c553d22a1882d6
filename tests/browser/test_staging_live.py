"""A staging deploy from the dashboard: the deploy form (searchable list, live gates, notes, ticket
link), the confirm step, and the deployment watched live (state, step timeline, log output) to
success, without reloading the page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pw = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
expect = pw.expect

from tests.browser.conftest import screenshot  # noqa: E402
from tests.browser.flows import LONG, matches, nav, pick_ref, state, step_state  # noqa: E402
from tests.browser.world import World, make_world  # noqa: E402
from tests.e2e.harness import git  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from make_world(tmp_path_factory.mktemp("staging"))


def test_a_staging_deploy_watched_live_to_success(world: World, sign_in: Callable[[str, str], Any]) -> None:
    hold = world.effects / "hold-rollout"
    hold.touch()  # the rollout waits until the test has seen it running
    page = sign_in(world.url, "eve")
    page.locator("[data-service=shop]").get_by_role("link", name="Deploy to Staging").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Deploy shop to Staging")
    pick_ref(page, "main", search="main", count=1)
    expect(page.get_by_test_id("verdict")).to_contain_text("Deployable now")
    page.get_by_label("Notes").fill("new checkout flow")
    page.get_by_label("Ticket").fill("PROJ-123")
    page.get_by_role("button", name="Review deployment").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm: deploy shop to Staging")
    expect(page.get_by_role("link", name="PROJ-123")).to_have_attribute(
        "href", "https://jira.example.com/browse/PROJ-123"
    )
    page.get_by_role("button", name="Confirm Deployment").click()
    expect(page).to_have_url(matches(r"/deployments/[0-9a-f-]{36}$"))
    expect(step_state(page, "prepare")).to_have_text("succeeded", timeout=LONG)
    expect(page.get_by_test_id("log-prepare")).to_contain_text("prepare ok")
    expect(step_state(page, "rollout")).to_have_text("running", timeout=LONG)
    expect(state(page)).to_have_text("running")
    expect(page.get_by_test_id("log-rollout")).to_contain_text("replica 1/2: starting")  # its output, live
    screenshot(page, "deployment-running.png")
    page.evaluate("window.stillTheSamePage = true")
    hold.unlink()
    expect(state(page)).to_have_text("succeeded", timeout=LONG)
    expect(page.get_by_test_id("log-smoke")).to_contain_text("smoke ok")
    assert page.evaluate("window.stillTheSamePage") is True  # seen live, not by reloading
    expect(page.locator("[data-live]")).to_have_attribute("data-live-state", "ended")
    expect(page.get_by_role("link", name="PROJ-123")).to_be_visible()
    nav(page, "Overview")
    main = git(world.repo, "rev-parse", "main")
    expect(page.locator("tr[data-environment=staging] .serving")).to_contain_text(main[:12])
