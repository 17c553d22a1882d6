"""The monitoring chart in Chromium: a signed-in engineer opens the page of a production deployment
rolled back on a breach; its monitoring part shows the evidence, the chart
(/deployments/{id}/monitoring.svg as an image, loaded) and the environment's links expanded, and
the screenshot of the page goes to docs/screenshots/monitoring-chart.png (docs/dashboard.md, the
README). The chart's own text is checked in the SVG document itself. The samples are built through
the store on the server's real database (tests/web/monitoring_world.py), judged by the domain's
own judge: a real monitored deploy with a breach is tests/e2e/test_monitoring.py's, and slower."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.browser.conftest import screenshot
from tests.browser.world import password
from tests.e2e.harness import Server
from tests.web.monitoring_world import seed

from conveyor.devserver import make_token
from conveyor.web import charts

LOADED = """() => {
  const img = document.querySelector('[data-testid="monitoring-chart"] img');
  return img !== null && img.complete && img.naturalWidth > 0;
}"""


def test_monitoring_chart_on_the_deployment_page(tmp_path: Path, sign_in: Callable[[str, str], Any]) -> None:
    from playwright.sync_api import expect

    database_url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    make_token(database_url, "eve", ["engineer"], password=password("eve"))
    server = Server(home=tmp_path / "home", database_url=database_url, poll_interval=0)
    server.start()
    try:
        monitored = seed(database_url)
        page = sign_in(server.url, "eve")
        response = page.goto(f"{server.url}/deployments/{monitored.deployment_id}/monitoring.svg")
        assert response is not None and response.status == 200
        assert response.headers["content-type"].startswith("image/svg+xml")
        expect(page.locator("svg > text").first).to_have_text("shop in production: monitoring v1.1.0")
        expect(page.locator("text", has_text="rollback_if error_rate > 2%")).to_be_visible()
        expect(page.locator("text", has_text=f"breach (interval {monitored.breach_seq + 1})").first).to_be_visible()

        page.set_viewport_size({"width": 1100, "height": 1400})
        response = page.goto(f"{server.url}/deployments/{monitored.deployment_id}")
        assert response is not None and response.status == 200
        monitoring = page.get_by_test_id("monitoring")
        expect(monitoring.get_by_test_id("monitoring-verdict")).to_have_text("breach")
        expect(monitoring.get_by_test_id("breach")).to_contain_text("error_rate")
        expect(monitoring.get_by_test_id("flag-changes")).to_contain_text("new-checkout: on by eve")
        expect(monitoring.get_by_test_id("env-links").get_by_role("link", name="Grafana")).to_be_visible()
        page.wait_for_function(LOADED, timeout=15_000)  # polls until the image has loaded, or fails
        chart = monitoring.get_by_test_id("monitoring-chart").locator("img")
        expect(chart).to_be_visible()
        box = chart.bounding_box()
        assert box is not None and 0 < box["width"] <= charts.WIDTH and box["height"] > 100
        screenshot(page, "monitoring-chart.png")
    finally:
        server.stop()
