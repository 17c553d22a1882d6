"""Sign-in and sign-out, session cookie flags, CSRF, and permissions: an engineer sees no
Deploy to Production button and a forged POST from them is refused with 403; a POST without the
CSRF token is refused with 403; nothing changes either time. Own API tokens: create and revoke."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

pw = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
expect = pw.expect

from tests.browser.world import World, make_world  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from make_world(tmp_path_factory.mktemp("signin"))


def csrf(page: Any) -> str:
    return str(page.locator("input[name=csrf_token]").first.get_attribute("value"))


def test_sign_in_with_a_wrong_then_the_right_password(world: World, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(world.url + "/history")
    expect(page).to_have_url(world.url + "/login?next=%2Fhistory")
    page.get_by_label("User name").fill("rita")
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Unknown user or wrong password.")
    page.get_by_label("Password").fill("rita-secret-pw")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(world.url + "/history")  # back where she was going
    expect(page.get_by_test_id("signed-in-as")).to_have_text("rita")
    cookie = next(c for c in context.cookies() if c["name"] == "conveyor_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    entries = world.api("ada", "GET", "/audit", params={"limit": 50})["entries"]
    actions = [(e["action"], e["subject"]) for e in entries]
    assert ("user.login_failed", "rita") in actions and ("user.login", "rita") in actions

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(world.url + "/login")
    page.goto(world.url + "/")
    expect(page).to_have_url(world.url + "/login?next=%2F")
    context.close()


def test_an_engineer_sees_no_production_button_and_a_forged_post_is_refused(
    world: World, sign_in: Callable[[str, str], Any]
) -> None:
    page = sign_in(world.url, "eve")
    board = page.locator("[data-service=shop]")
    expect(board.get_by_role("link", name="Deploy to Staging")).to_be_visible()
    expect(board.get_by_role("link", name="Deploy to Production")).to_have_count(0)
    expect(page.locator("tr[data-environment=production] .actions a")).to_have_count(0)
    response = page.request.post(
        world.url + "/deploy",
        form={"csrf_token": csrf(page), "service": "shop", "environment": "production", "ref": "main"},
    )
    assert response.status == 403
    assert "eve (engineer) may not deploy to production; only release_manager may" in response.text()
    assert world.api("ada", "GET", "/deployments", params={"environment": "production"}) == []
    # the form itself is refused too, with the reason and no form
    page.goto(world.url + "/deploy?service=shop&environment=production")
    expect(page.get_by_test_id("error")).to_contain_text("may not deploy to production")
    expect(page.get_by_role("button", name="Review deployment")).to_have_count(0)


def test_a_post_without_the_csrf_token_is_refused(world: World, sign_in: Callable[[str, str], Any]) -> None:
    page = sign_in(world.url, "rita")
    form = {"service": "shop", "environment": "staging", "ref": "main"}
    missing = page.request.post(world.url + "/deploy", form=form)
    assert missing.status == 403 and "CSRF token is missing" in missing.text()
    wrong = page.request.post(world.url + "/deploy", form={**form, "csrf_token": "forged"})
    assert wrong.status == 403
    signout = page.request.post(world.url + "/logout", form={})
    assert signout.status == 403
    assert world.api("ada", "GET", "/deployments") == []
    expect(page.get_by_test_id("signed-in-as")).to_have_text("rita")


def test_own_api_tokens_can_be_created_and_revoked(world: World, sign_in: Callable[[str, str], Any]) -> None:
    page = sign_in(world.url, "ron")
    page.get_by_role("navigation").get_by_role("link", name="API tokens").click()
    page.get_by_label("Name").fill("laptop CLI")
    page.get_by_role("button", name="Create token").click()
    token = page.get_by_test_id("new-token").inner_text().strip()
    me = httpx.get(world.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.status_code == 200 and me.json()["name"] == "ron"
    row = page.locator(f"tr[data-prefix='{token[:10]}']")
    expect(row).to_contain_text("laptop CLI")
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(f"tr[data-prefix='{token[:10]}']")).to_contain_text("revoked")
    gone = httpx.get(world.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert gone.status_code == 401


def test_the_audit_page_shows_the_chain_status_to_admins_only(world: World, sign_in: Callable[[str, str], Any]) -> None:
    page = sign_in(world.url, "ada")
    page.get_by_role("navigation").get_by_role("link", name="Audit").click()
    expect(page.get_by_test_id("chain")).to_contain_text("Chain verified")
    expect(page.locator("table.audit")).to_contain_text("user.login")
    engineer = sign_in(world.url, "eve")
    expect(engineer.get_by_role("link", name="Audit")).to_have_count(0)
    assert engineer.request.get(world.url + "/audit").status == 403
