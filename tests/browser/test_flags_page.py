"""The flags page: a flag made through the API shows off everywhere; a release manager turns it
on in staging and kills it with a reason (the same service function as the API: state, audit);
an engineer sees no buttons for production and a forged POST from them is refused with 403.
A release manager changes a production rollout from 10% to 50% on the flags page (the API shows
50%), where an engineer gets no rollout control and a forged rollout or targeting POST gets 403.
A flag's page edits targeting rules and variants (add, change value and weight, remove) and shows
its history with the deployments; an engineer gets no variant controls for a flag that is on in
production, and a forged variant change from them is refused with 403, as in the API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pw = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
expect = pw.expect

from tests.browser.world import World, make_world  # noqa: E402

from conveyor.web.flag import fingerprint  # noqa: E402


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


def rollout_of(world: World, key: str, environment: str) -> int | None:
    strategies = state_in(world, key, environment)["strategies"]
    return next((s["rollout"] for s in strategies if not s["constraints"]), None)


def test_a_release_manager_changes_a_rollout_from_10_to_50_percent(
    world: World, sign_in: Callable[[str, str], Any]
) -> None:
    world.api("rita", "POST", "/flags", json={"key": "gradual"})
    world.api("rita", "POST", "/flags/gradual/environments/production/rollout", json={"percent": 10})
    page = sign_in(world.url, "rita")
    page.goto(world.url + "/flags")
    production = page.locator("[data-service=shop] tr[data-flag=gradual] td[data-env=production]")
    expect(production.get_by_test_id("flag-rollout")).to_have_text("rollout 10%")
    production.get_by_label("Rollout % in production").fill("50")
    production.get_by_role("button", name="Set %").click()
    expect(page.get_by_test_id("flag-message")).to_have_text("shop/gradual rollout set to 50% in production.")
    expect(production.get_by_test_id("flag-rollout")).to_have_text("rollout 50%")
    assert rollout_of(world, "gradual", "production") == 50
    entries = world.api("ada", "GET", "/audit", params={"limit": 50})["entries"]
    assert any(
        e["action"] == "flag.rollout" and e["actor"] == "rita" and e["details"]["percent"] == 50
        for e in entries
        if e["subject"] == "shop/gradual"
    )


def test_an_engineer_may_not_change_a_production_rollout(world: World, sign_in: Callable[[str, str], Any]) -> None:
    world.api("rita", "POST", "/flags", json={"key": "careful"})
    world.api("rita", "POST", "/flags/careful/environments/production/rollout", json={"percent": 10})
    page = sign_in(world.url, "eve")
    page.goto(world.url + "/flags")
    row = page.locator("[data-service=shop] tr[data-flag=careful]")
    expect(row.locator("td[data-env=staging]").get_by_role("button", name="Set %")).to_be_visible()
    expect(row.locator("td[data-env=production] form")).to_have_count(0)
    page.goto(world.url + "/flags/shop/careful")
    expect(page.locator("section[data-env=staging] [data-testid=rollout-form]")).to_be_visible()
    expect(page.locator("section[data-env=production] form")).to_have_count(0)

    token = str(page.locator("input[name=csrf_token]").first.get_attribute("value"))
    base = world.url + "/flags/shop/careful/environments/production"
    forged = page.request.post(base + "/rollout", form={"csrf_token": token, "percent": "50"})
    assert forged.status == 403
    assert "eve (engineer) may not change flags in production" in forged.text()
    rule = {"csrf_token": token, "op": "add-rule", "attribute": "userId", "operator": "IN", "values": "eve"}
    assert page.request.post(base + "/targeting", form=rule).status == 403
    no_csrf = page.request.post(base + "/rollout", form={"percent": "50"})
    assert no_csrf.status == 403
    assert rollout_of(world, "careful", "production") == 10
    assert len(state_in(world, "careful", "production")["strategies"]) == 1


def test_targeting_variants_and_the_timeline_on_a_flags_page(world: World, sign_in: Callable[[str, str], Any]) -> None:
    world.api("rita", "POST", "/flags", json={"key": "banner", "type": "string", "default": "plain"})
    deployment = world.api("eve", "POST", "/deployments", json={"environment": "development", "ref": "develop"})
    page = sign_in(world.url, "rita")
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    page.goto(world.url + "/flags")
    page.locator("[data-service=shop] tr[data-flag=banner]").get_by_test_id("flag-link").click()
    expect(page).to_have_url(world.url + "/flags/shop/banner")
    staging = page.locator("section[data-env=staging]")

    staging.locator("details.edit summary", has_text="Add a targeting rule").click()
    add = staging.locator("form:has(input[value=add-rule])")
    add.get_by_label("Attribute").fill("country")
    add.get_by_label("Values").fill("se, no")
    add.get_by_label("Rule rollout %").fill("25")
    add.get_by_role("button", name="Add rule").click()
    expect(page.get_by_test_id("flag-message")).to_have_text("targeting rule added in staging.")
    expect(staging.get_by_test_id("constraint")).to_have_text(["country IN se, no"])

    staging.locator("details.edit summary", has_text="Add a constraint").click()
    more = staging.locator("form:has(input[value=add-constraint])")
    more.get_by_label("Attribute").fill("plan")
    more.get_by_label("Operator").select_option("STR_STARTS_WITH")
    more.get_by_label("Values").fill("pro")
    more.get_by_label("Negate", exact=True).check()
    more.get_by_role("button", name="Add constraint").click()
    expect(page.get_by_test_id("flag-message")).to_have_text("constraint added in staging.")
    expect(staging.get_by_test_id("constraint")).to_have_count(2)
    strategies = state_in(world, "banner", "staging")["strategies"]
    assert [
        (s["rollout"], [(c["attribute"], c["operator"], c["values"], c["inverted"]) for c in s["constraints"]])
        for s in strategies
    ] == [(25, [("country", "IN", ["se", "no"], False), ("plan", "STR_STARTS_WITH", ["pro"], True)])]

    staging.locator("li.constraint").first.get_by_role("button", name="Remove").click()
    expect(page.get_by_test_id("flag-message")).to_have_text("constraint removed in staging.")
    expect(staging.get_by_test_id("constraint")).to_have_text(["plan NOT STR_STARTS_WITH pro"])

    variants = page.get_by_test_id("variants")
    variants.get_by_label("Variant name").fill("blue")
    variants.get_by_label("Value").fill("a blue banner")
    variants.get_by_label("Weight").fill("3")
    variants.get_by_role("button", name="Add variant").click()
    expect(page.get_by_test_id("flag-message")).to_have_text("variant added.")
    added = world.api("ada", "GET", "/flags/banner")["variants"]
    assert [(v["name"], v["value"], v["weight"]) for v in added] == [("blue", "a blue banner", 3)]

    world.server.wait_finished(deployment["id"])
    page.reload()
    timeline = page.get_by_test_id("timeline").locator("> li")
    kinds = [timeline.nth(i).get_attribute("data-kind") for i in range(timeline.count())]
    actions = [a for a in (timeline.nth(i).get_attribute("data-action") for i in range(timeline.count())) if a]
    assert "deployment" in kinds
    assert actions == ["flag.updated", "flag.state_set", "flag.state_set", "flag.state_set", "flag.created"]
    newest = timeline.first
    expect(newest).to_contain_text("by rita")
    change = newest.locator(".changes li")
    expect(change).to_have_count(1)
    expect(change.locator(".before")).to_have_text("[]")
    expect(change.locator(".after")).to_contain_text('"name": "blue"')
    expect(change.locator(".after")).to_contain_text('"value": "a blue banner"')

    assert not [m for m in messages if "Content Security Policy" in m], messages
    eve = sign_in(world.url, "eve")
    eve.goto(world.url + "/flags/shop/banner")
    expect(eve.locator("section[data-env=production] form")).to_have_count(0)
    expect(eve.get_by_test_id("timeline").locator("> li[data-kind=flag]")).to_have_count(5)


def test_variants_are_edited_on_a_flags_page_and_an_engineer_is_refused_where_it_is_on(
    world: World, sign_in: Callable[[str, str], Any]
) -> None:
    two = [{"name": "blue", "value": "blue", "weight": 1}, {"name": "red", "value": "red", "weight": 1}]
    world.api("rita", "POST", "/flags", json={"key": "hero", "type": "string", "default": "plain", "variants": two})
    world.api("rita", "POST", "/flags/hero/environments/production/on")
    page = sign_in(world.url, "rita")
    page.goto(world.url + "/flags/shop/hero")
    blue = page.locator("[data-testid=variants] tr[data-variant=blue]")
    blue.locator("summary", has_text="Edit").click()
    blue.get_by_label("Value of blue").fill("navy")
    blue.get_by_label("Weight of blue").fill("3")
    blue.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("flag-message")).to_have_text("variant changed.")
    changed = [(v["name"], v["value"], v["weight"]) for v in world.api("ada", "GET", "/flags/hero")["variants"]]
    assert changed == [("blue", "navy", 3), ("red", "red", 1)]

    # the flag is on in production: its variants are production's deployers' to change, as in the API
    eve = sign_in(world.url, "eve")
    eve.goto(world.url + "/flags/shop/hero")
    expect(eve.locator("[data-testid=variants] form")).to_have_count(0)
    token = str(eve.locator("input[name=csrf_token]").first.get_attribute("value"))
    variants = world.api("ada", "GET", "/flags/hero")["variants"]
    form = {"csrf_token": token, "index": "0", "value": "teal", "weight": "9", "expect": fingerprint(variants)}
    forged = eve.request.post(world.url + "/flags/shop/hero/variants/update", form=form)
    assert forged.status == 403
    assert "eve (engineer) may not change flags in production" in forged.text()
    assert world.api("ada", "GET", "/flags/hero")["variants"] == variants
    entries = world.api("ada", "GET", "/audit", params={"limit": 20})["entries"]
    assert any(e["action"] == "forbidden" and e["actor"] == "eve" and e["subject"] == "shop/hero" for e in entries)
