"""The monitoring chart in Chromium: a signed-in engineer opens /deployments/{id}/monitoring.svg of a
production deployment rolled back on a breach, and the screenshot goes to
docs/screenshots/monitoring-chart.png (shown in docs/dashboard.md). The samples are built through
the store on the server's real database (tests/web/monitoring_world.py), judged by the domain's
own judge: a real monitored deploy with a breach is tests/e2e/test_monitoring.py's, and slower."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.browser.conftest import SCREENSHOTS
from tests.browser.world import password
from tests.e2e.harness import Server
from tests.web.monitoring_world import seed

from conveyor.devserver import make_token
from conveyor.web import charts


def test_monitoring_chart_in_the_browser(tmp_path: Path, sign_in: Callable[[str, str], Any]) -> None:
    from playwright.sync_api import expect

    database_url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    make_token(database_url, "eve", ["engineer"], password=password("eve"))
    server = Server(home=tmp_path / "home", database_url=database_url, poll_interval=0)
    server.start()
    try:
        monitored = seed(database_url)
        page = sign_in(server.url, "eve")
        page.set_viewport_size({"width": charts.WIDTH, "height": charts.LEGEND_HEIGHT + 2 * charts.PANEL_HEIGHT})
        response = page.goto(f"{server.url}/deployments/{monitored.deployment_id}/monitoring.svg")
        assert response is not None and response.status == 200
        assert response.headers["content-type"].startswith("image/svg+xml")
        expect(page.locator("svg > text").first).to_have_text("shop in production: monitoring v1.1.0")
        expect(page.locator("text", has_text="rollback_if error_rate > 2%")).to_be_visible()
        expect(page.locator("text", has_text=f"breach (interval {monitored.breach_seq + 1})").first).to_be_visible()
        box = page.locator("svg").first.bounding_box()
        assert box is not None and box["width"] == charts.WIDTH
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        # the viewport is the chart's size; full_page (conftest.screenshot) never settles on an SVG document
        page.screenshot(path=str(SCREENSHOTS / "monitoring-chart.png"))
    finally:
        server.stop()
