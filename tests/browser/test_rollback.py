"""Rollback from the dashboard to the previous production version: the dialog preselects it and
shows what changes, and the environment serves it again. Then the history, filtered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pw = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
expect = pw.expect

from tests.browser.conftest import screenshot  # noqa: E402
from tests.browser.flows import (  # noqa: E402
    LONG,
    approve_and_tick,
    deploy_production,
    deploy_staging,
    nav,
    state,
)
from tests.browser.world import World, make_world  # noqa: E402
from tests.e2e.harness import commit  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    for world in make_world(tmp_path_factory.mktemp("rollback")):
        deploy_staging(world, "main")
        assert deploy_production(world, "main")["version"] == "v0.1.0"
        yield world


def test_rollback_to_the_previous_version(world: World, sign_in: Callable[[str, str], Any]) -> None:
    sha = commit(world.repo, {"app.txt": "version two\n"}, "Faster checkout")
    deploy_staging(world, sha)
    d = world.api("rita", "POST", "/deployments", json={"environment": "production", "ref": sha})
    ron = sign_in(world.url, "ron")
    expect(ron.get_by_test_id("waiting")).to_contain_text("needs your approval")
    screenshot(ron, "overview.png")
    approve_and_tick(world, d["id"])
    assert world.server.wait_finished(d["id"])["version"] == "v0.2.0"

    rita = sign_in(world.url, "rita")
    expect(rita.locator("tr[data-environment=production] .serving")).to_contain_text("v0.2.0")
    rita.locator("tr[data-environment=production]").get_by_role("link", name="Rollback").click()
    dialog = rita.get_by_role("dialog")
    expect(dialog.locator("input[name=to][value='v0.1.0']")).to_be_checked()
    changes = dialog.get_by_test_id("rollback-changes")
    expect(changes).to_contain_text("Faster checkout")
    # the schema's truth: no migration since v0.1.0 removed what its code reads (docs/database.md)
    expect(changes.get_by_test_id("schema-ok")).to_contain_text("The database stays as it is")
    expect(changes.get_by_test_id("schema-gap")).to_have_count(0)
    screenshot(rita, "rollback-dialog.png")
    dialog.get_by_role("button", name="Confirm rollback").click()
    expect(rita.get_by_role("heading", level=1)).to_contain_text("rollback to v0.1.0")
    expect(state(rita)).to_have_text("succeeded", timeout=LONG)
    nav(rita, "Overview")
    expect(rita.locator("tr[data-environment=production] .serving")).to_contain_text("v0.1.0")
    assert (world.effects / "serving-production").read_text().startswith("v0.1.0")

    # the history, filtered: rita's three production deployments, the rollback first
    nav(rita, "History")
    rita.get_by_label("Environment").select_option("production")
    rita.get_by_label("User").fill("rita")
    rita.get_by_role("button", name="Filter").click()
    rows = rita.locator("table.history tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("rollback")
    rita.get_by_label("State").select_option("rolled_back")
    rita.get_by_role("button", name="Filter").click()
    expect(rita.locator("table.history")).to_contain_text("No deployments match.")
