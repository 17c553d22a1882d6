"""The flags page: a flag made through the API shows off everywhere; a release manager turns it
on in staging and kills it with a reason (the same service function as the API: state, audit);
an engineer sees no buttons for production and a forged POST from them is refused with 403."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pw = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
expect = pw.expect

from tests.browser.world import World, make_world  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from make_world(tmp_path_factory.mktemp("flags"), ticket_url=None)


def state_in(world: World, key: str, environment: str) -> dict[str, Any]:
    flag = world.api("ada", "GET", f"/flags/{key}")
    found: dict[str, Any] = next(e for e in flag["environments"] if e["environment"] == environment)
    return found


def test_a_release_manager_turns_a_flag_on_and_kills_it(world: World, sign_in: Callable[[str, str], Any]) -> None:
    world.api("rita", "POST", "/flags", json={"key": "new_checkout", "description": "the new checkout"})
    page = sign_in(world.url, "rita")
    page.get_by_role("link", name="Flags").click()
    expect(page).to_have_url(world.url + "/flags")
    row = page.locator("[data-service=shop] tr[data-flag=new_checkout]")
    for env in ("development", "staging", "production"):
        expect(row.locator(f"td[data-env={env}] [data-testid=flag-state]")).to_have_text("off")
    staging = row.locator("td[data-env=staging]")

    staging.get_by_role("button", name="On").click()
    expect(page.get_by_test_id("flag-message")).to_have_text("shop/new_checkout turned on in staging.")
    expect(staging.get_by_test_id("flag-state")).to_have_text("on")
    expect(row.locator("td[data-env=production] [data-testid=flag-state]")).to_have_text("off")
    assert state_in(world, "new_checkout", "staging")["enabled"] is True

    staging.locator("details.kill summary").click()
    staging.get_by_label("Reason").fill("errors at checkout")
    staging.get_by_role("button", name="Kill").click()
    expect(page.get_by_test_id("flag-message")).to_have_text("shop/new_checkout killed (off) in staging.")
    expect(staging.get_by_test_id("flag-state")).to_have_text("off")
    assert state_in(world, "new_checkout", "staging")["enabled"] is False
    entries = world.api("ada", "GET", "/audit", params={"limit": 50})["entries"]
    mine = [
        (e["action"], e["actor"], e["details"].get("reason")) for e in entries if e["subject"] == "shop/new_checkout"
    ]
    assert ("flag.enabled", "rita", None) in mine
    assert ("flag.killed", "rita", "errors at checkout") in mine


def test_an_engineer_has_no_production_buttons_and_a_forged_post_is_refused(
    world: World, sign_in: Callable[[str, str], Any]
) -> None:
    world.api("eve", "POST", "/flags", json={"key": "quiet_mode"})
    page = sign_in(world.url, "eve")
    page.goto(world.url + "/flags")
    row = page.locator("[data-service=shop] tr[data-flag=quiet_mode]")
    expect(row.locator("td[data-env=staging]").get_by_role("button", name="On")).to_be_visible()
    expect(row.locator("td[data-env=production] [data-testid=flag-state]")).to_have_text("off")
    expect(row.locator("td[data-env=production] button")).to_have_count(0)

    token = str(page.locator("input[name=csrf_token]").first.get_attribute("value"))
    forged = page.request.post(
        world.url + "/flags/quiet_mode/production/on", form={"csrf_token": token, "service": "shop"}
    )
    assert forged.status == 403
    assert "eve (engineer) may not change flags in production" in forged.text()
    no_csrf = page.request.post(world.url + "/flags/quiet_mode/staging/on", form={"service": "shop"})
    assert no_csrf.status == 403
    assert state_in(world, "quiet_mode", "production")["enabled"] is False
    assert state_in(world, "quiet_mode", "staging")["enabled"] is False
    entries = world.api("ada", "GET", "/audit", params={"limit": 50})["entries"]
    assert any(e["action"] == "forbidden" and e["actor"] == "eve" for e in entries)
