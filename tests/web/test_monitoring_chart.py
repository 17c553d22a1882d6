"""GET /deployments/{id}/monitoring.svg in the real app (in-process, SQLite and PostgreSQL): a
signed-in user gets the chart of the stored samples; without a session it is refused."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from tests.inproc import app
from tests.web.monitoring_world import seed

NS = "{http://www.w3.org/2000/svg}"


def test_monitoring_chart(tmp_path: Path, database_url: str) -> None:
    with app(tmp_path / "home", database_url, {"eve": ["engineer"]}) as a:
        monitored = seed(database_url)
        path = f"/deployments/{monitored.deployment_id}/monitoring.svg"

        anonymous = a.client.get(path, follow_redirects=False)
        assert anonymous.status_code in (302, 303, 307), anonymous.status_code
        assert anonymous.headers["location"].startswith("/login")
        assert "svg" not in anonymous.headers.get("content-type", "")

        a.sign_in("eve")
        r = a.client.get(path)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("image/svg+xml")
        assert r.headers["cache-control"] == "no-store"
        root = ET.fromstring(r.text)
        labels = ["".join(t.itertext()) for t in root.iter(f"{NS}text")]
        assert "shop in production: monitoring v1.1.0" in labels
        assert "rollback_if error_rate > 2%" in labels and "rollback_if p95_ms > 800" in labels
        assert "v1.0.0 before the switch" in labels  # the baseline, from the judged findings
        assert "flag new-checkout" in labels
        assert f"breach (interval {monitored.breach_seq + 1})" in labels
        series = [e for e in root.iter(f"{NS}polyline") if e.get("class") == "series"]
        assert len(series) == 2  # error rate and p95
        assert len(series[0].get("points", "").split()) == monitored.breach_seq + 1
        assert len([c for c in root.iter(f"{NS}circle") if c.get("class") == "breach"]) == 1

        by_prefix = a.client.get(f"/deployments/{monitored.deployment_id[:8]}/monitoring.svg")
        assert by_prefix.status_code == 200 and by_prefix.text == r.text
        assert a.client.get("/deployments/nosuchdeployment/monitoring.svg").status_code == 404
