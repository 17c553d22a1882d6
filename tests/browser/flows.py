"""Helpers the browser tests share: locators for a deployment page, picking a ref on the deploy
form, and API shortcuts that put a world in a given state (so each test module stands alone, also
when pytest-xdist spreads the tests over workers)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect
from tests.browser.world import World

LONG = 60_000  # ms: a whole deployment, seen live


def state(page: Any) -> Any:
    """The deployment's state badge in its page's live panel."""
    return page.locator("[data-live-part=panel] h1 [data-testid=state]")


def step_state(page: Any, step: str) -> Any:
    return page.locator(f"li[data-step={step}] .step-head .state")


def nav(page: Any, name: str) -> None:
    page.get_by_role("navigation").get_by_role("link", name=name).click()


def matches(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def pick_ref(page: Any, ref: str, search: str = "", count: int = 0) -> None:
    """Pick ``ref`` from the deploy form's list, after searching for ``search`` (``count`` entries left)."""
    if search:
        page.get_by_placeholder("Search branches, tags, commits").fill(search)
        expect(page.locator("#ref-list label.ref")).to_have_count(count)
    radio = page.locator(f"#ref-list input[name=ref][value='{ref}']")
    radio.check()
    expect(radio).to_be_checked()


def deploy_staging(world: World, ref: str) -> dict[str, Any]:
    d = world.api("eve", "POST", "/deployments", json={"environment": "staging", "ref": ref})
    done = world.server.wait_finished(d["id"])
    assert done["state"] == "succeeded", done
    return done


def deploy_production(world: World, ref: str) -> dict[str, Any]:
    """Request as rita, approve as ron and rosa, tick the checklist: it runs by itself."""
    d = world.api("rita", "POST", "/deployments", json={"environment": "production", "ref": ref})
    approve_and_tick(world, d["id"])
    done = world.server.wait_finished(d["id"])
    assert done["state"] == "succeeded", done
    return done


def approve_and_tick(world: World, deployment_id: str) -> None:
    for user in ("ron", "rosa"):
        world.api(user, "POST", f"/deployments/{deployment_id}/approvals", json={})
    for item in ("rollback_plan", "stakeholders_notified"):
        world.api("rita", "POST", f"/deployments/{deployment_id}/checklist", json={"item": item})
