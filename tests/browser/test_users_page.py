"""The dashboard under its Content-Security-Policy, and the admins' Users page (issue 11): no page
breaks the policy (Chromium reports every violation on the console), and an admin disables a
signed-in user, whose open page and API token stop working at once, then revokes a token."""

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
    yield from make_world(tmp_path_factory.mktemp("users"))


def me(world: World, user: str) -> int:
    headers = {"Authorization": f"Bearer {world.tokens[user]}"}
    return httpx.get(world.url + "/api/v1/me", headers=headers, timeout=30).status_code


def test_no_page_violates_the_content_security_policy(world: World, sign_in: Callable[[str, str], Any]) -> None:
    page = sign_in(world.url, "ada")
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    for path in ("/", "/history", "/flags", "/audit", "/tokens", "/users", "/deploy", "/login"):
        response = page.goto(world.url + path)
        assert response is not None and "frame-ancestors 'none'" in response.headers["content-security-policy"]
        page.wait_for_load_state("load")
    assert not [m for m in messages if "Content Security Policy" in m], messages


def test_an_admin_disables_a_signed_in_user_and_revokes_a_token(
    world: World, sign_in: Callable[[str, str], Any]
) -> None:
    eve = sign_in(world.url, "eve")
    expect(eve.get_by_role("link", name="Users")).to_have_count(0)  # not for engineers
    ada = sign_in(world.url, "ada")
    ada.get_by_role("link", name="Users").click()
    row = ada.locator('tr[data-user="eve"]')
    row.get_by_role("button", name="Disable").click()
    expect(ada.locator('tr[data-user="eve"]')).to_contain_text("disabled")
    assert me(world, "eve") == 401
    eve.reload()
    expect(eve.get_by_label("User name")).to_be_visible()  # her session ended: back to sign-in
    ada.locator('tr[data-user="eve"]').get_by_role("button", name="Enable").click()
    expect(ada.locator('tr[data-user="eve"]')).to_contain_text("enabled")
    assert me(world, "eve") == 200
    prefix = world.tokens["max"][:10]
    token_row = ada.locator("table.tokens tr", has_text=prefix)
    token_row.get_by_role("button", name="Revoke").click()
    expect(ada.locator("table.tokens tr", has_text=prefix)).to_contain_text("revoked")
    assert me(world, "max") == 401
