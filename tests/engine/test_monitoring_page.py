"""The deployment page's monitoring part, in the real app (in-process): the evidence of a breach
with its numbers and the flags changed meanwhile, and the Accept
now / Roll back now buttons shown to release managers only, a forged press by an engineer refused.

The deployments are built through the store (tests/web/monitoring_world.py); the loop that ends
them is tested in tests/engine/test_monitoring.py and tests/e2e/test_monitoring.py."""

from __future__ import annotations

import re
from pathlib import Path

from tests.inproc import app
from tests.web.monitoring_world import seed

from conveyor.domain.deployment import DeploymentState

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
