"""Browser tests: Playwright for Python driving Debian's Chromium (/usr/bin/chromium, headless).
The whole suite is skipped, with the reason, when Chromium or the playwright package is missing.
Each test module starts its own real server (tests/browser/world.py)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does) to run the browser tests"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing: pip install -e '.[dev]' to run the browser tests"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = missing()
    if reason:
        for item in items:
            if {"browser", "sign_in"} & set(getattr(item, "fixturenames", ())):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Not for the whole session: Playwright's sync API runs an
    event loop on this thread while it is open, and asyncio tests in later modules need none."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # generous on a busy CI machine; expectations return as soon as met
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield chromium
        chromium.close()


def screenshot(page: Any, name: str) -> None:
    """Save a screenshot for docs/screenshots (the committed ones are shown in the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


@pytest.fixture
def sign_in(browser: Any) -> Iterator[Callable[[str, str], Any]]:
    """sign_in(url, user) -> a page of a new browser context (its own cookies), signed in."""
    from playwright.sync_api import expect
    from tests.browser.world import password

    contexts = []

    def open_as(url: str, user: str) -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(url + "/")
        page.get_by_label("User name").fill(user)
        page.get_by_label("Password").fill(password(user))
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_test_id("signed-in-as")).to_have_text(user)
        return page

    yield open_as
    for context in contexts:
        context.close()
