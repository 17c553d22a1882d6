"""The deployment page's monitoring part, in the real app (in-process): the evidence of a breach
with its numbers and the flags changed meanwhile, and the Accept
now / Roll back now buttons shown to release managers only, a forged press by an engineer refused;
the chart and the environment's links expanded for the deployment.

The deployments are built through the store (tests/web/monitoring_world.py); the loop that ends
them is tested in tests/engine/test_monitoring.py and tests/e2e/test_monitoring.py."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import delete
from tests.inproc import app
from tests.web.monitoring_world import seed

from conveyor.domain.deployment import DeploymentState
from conveyor.domain.links import epoch_ms, rfc3339
from conveyor.store import deployments as store
from conveyor.store.tables import monitor_samples, monitorings

pytestmark = pytest.mark.sqlite_only  # see SQLITE_ONLY_DOC in tests/conftest.py
USERS = {"eve": ["engineer"], "rita": ["release_manager"]}


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def test_a_breach_is_shown_with_its_numbers_and_the_flags_changed_meanwhile(tmp_path: Path, database_url: str) -> None:
    with app(tmp_path / "home", database_url, USERS) as a:
        monitored = seed(database_url)
        a.sign_in("eve")
        page = a.client.get(f"/deployments/{monitored.deployment_id}")
        assert page.status_code == 200, page.text
        part = page.text[page.text.index('data-testid="monitoring"') :]
        breach = part[part.index('data-testid="breach"') : part.index("</ul>", part.index('data-testid="breach"'))]
        assert "error_rate" in breach and "against &gt; 2%" in breach, breach
        assert re.search(r"\d+\.\d% against", breach), breach
        assert "new-checkout: on by eve" in part
        assert 'data-testid="monitoring-actions"' not in part  # it ended


def test_accept_and_roll_back_now_are_for_release_managers(tmp_path: Path, database_url: str) -> None:
    with app(tmp_path / "home", database_url, USERS) as a:
        monitored = seed(database_url, state=DeploymentState.MONITORING, samples=2)
        path = f"/deployments/{monitored.deployment_id}"
        a.sign_in("eve")
        page = a.client.get(path)
        assert 'data-testid="monitoring"' in page.text and "Accept now" not in page.text
        for what in ("accept", "rollback"):
            forged = a.client.post(
                f"{path}/monitoring/{what}", data={"csrf_token": _csrf(page.text), "reason": "forged"}
            )
            assert forged.status_code == 403, forged.text
        assert a.ok("eve", "GET", path)["state"] == "monitoring"
        refused = [e for e in a.ok("admin", "GET", "/audit")["entries"] if e["action"] == "forbidden"]
        assert {e["details"]["attempted"] for e in refused} >= {"monitoring.accept", "monitoring.rollback"}
        a.client.cookies.clear()
        a.sign_in("rita")
        page = a.client.get(path)
        assert "Accept now" in page.text and "Roll back now" in page.text


def test_the_chart_and_the_environments_links_expanded_for_the_deployment(tmp_path: Path, database_url: str) -> None:
    """The links' range is a window's length (60 s) before the switch to the window's end (the
    breach, here); every value is percent-encoded."""
    with app(tmp_path / "home", database_url, USERS) as a:
        monitored = seed(database_url)
        a.sign_in("eve")
        page = a.client.get(f"/deployments/{monitored.deployment_id}")
        assert page.status_code == 200, page.text
        chart = re.search(r'data-testid="monitoring-chart">\s*<img src="([^"]+)"', page.text)
        assert chart, page.text
        assert chart.group(1) == f"/deployments/{monitored.deployment_id}/monitoring.svg?n={monitored.breach_seq + 1}"
        assert a.client.get(chart.group(1)).headers["content-type"].startswith("image/svg+xml")
        found = re.search(r'<p class="links" data-testid="env-links">(.*?)</p>', page.text)
        assert found, page.text
        hrefs = dict(
            (label, html.unescape(url))
            for url, label in re.findall(
                r'<a href="([^"]+)" rel="noopener noreferrer" target="_blank">([^<]+)</a>', found.group(1)
            )
        )
        switched = monitored.started_at - timedelta(seconds=4)
        since, until = switched - timedelta(seconds=60), monitored.now
        assert hrefs == {
            "Grafana": f"https://grafana.example.com/d/conveyor?var-service=shop&from={epoch_ms(since)}&to={epoch_ms(until)}",
            "Sentry": "https://sentry.example.com/issues/?query=release%3Av1.1.0&environment=production"
            f"&start={quote(rfc3339(since), safe='')}&end={quote(rfc3339(until), safe='')}",
        }
        assert "%3A" in hrefs["Sentry"].split("start=")[1]  # 12:00:00 encoded whole


def test_a_deployment_that_was_not_monitored_shows_its_links_for_its_own_time(
    tmp_path: Path, database_url: str
) -> None:
    """No monitoring part; the links in a card of their own, the range from 30 minutes before the
    deployment started to when it finished."""
    with app(tmp_path / "home", database_url, USERS) as a:
        monitored = seed(database_url)
        with a.rt.db.begin() as conn:
            conn.execute(delete(monitor_samples).where(monitor_samples.c.deployment_id == monitored.deployment_id))
            conn.execute(delete(monitorings).where(monitorings.c.deployment_id == monitored.deployment_id))
            d = store.get_deployment(conn, monitored.deployment_id)
        assert d.started_at is not None and d.finished_at is not None
        a.sign_in("eve")
        page = a.client.get(f"/deployments/{monitored.deployment_id}")
        assert page.status_code == 200, page.text
        assert 'data-testid="monitoring"' not in page.text and 'data-testid="monitoring-chart"' not in page.text
        card = page.text[page.text.index('data-testid="links"') :]
        since = d.started_at - timedelta(seconds=1800)
        grafana = f"var-service=shop&amp;from={epoch_ms(since)}&amp;to={epoch_ms(d.finished_at)}"
        assert grafana in card[: card.index("</section>")], card
