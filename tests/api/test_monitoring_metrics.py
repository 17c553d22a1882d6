"""The server's /metrics exports the monitoring signals per release (api/monitoring_metrics.py), in
the real app on SQLite and PostgreSQL over a monitored deployment built through the store; the text
parses with prometheus_client's own parser; docs/grafana-dashboard.json queries only series it
exports."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.inproc import app
from tests.web.monitoring_world import ERRORS, seed

from conveyor.api.monitoring_metrics import NAMES
from conveyor.domain.deployment import DeploymentState

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def series(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted({"service": "shop", "environment": "production", "release": "v1.1.0", **labels}.items())))
    assert key in found, f"{key} not in {sorted(k for k in found if k[0] == name)}"
    return found[key]


def test_metrics_export_monitoring(tmp_path: Path, database_url: str) -> None:
    with app(tmp_path / "home", database_url, {"pat": ["reporter"]}) as a:
        assert a.client.get("/metrics").status_code == 401
        empty = a.client.get("/metrics", headers={"Authorization": f"Bearer {a.tokens['pat']}"})
        assert empty.status_code == 200 and "conveyor_monitor_requests{" not in empty.text
        monitored = seed(database_url)
        r = a.client.get("/metrics", headers={"Authorization": f"Bearer {a.tokens['pat']}"})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        found = scrape(r.text)
        errors = ERRORS[monitored.breach_seq]
        assert series(found, "conveyor_monitor_requests") == 100
        assert series(found, "conveyor_monitor_errors") == errors
        assert series(found, "conveyor_monitor_error_ratio") == pytest.approx(errors / 100)
        assert 0.25 < series(found, "conveyor_monitor_latency_p95_seconds") <= 0.5  # the slow ones: 250-500 ms
        assert series(found, "conveyor_monitor_interval_seconds") == 5
        assert series(found, "conveyor_monitor_window_progress_ratio") == pytest.approx((monitored.breach_seq + 1) / 12)
        assert series(found, "conveyor_monitor_verdict", verdict="breach") == 1
        assert series(found, "conveyor_monitor_verdict", verdict="healthy") == 0
        assert series(found, "conveyor_monitor_state", state="rolled_back") == 1
        assert series(found, "conveyor_monitor_state", state="monitoring") == 0
        ended = series(found, "conveyor_monitor_sample_timestamp_seconds")
        assert ended == (monitored.started_at.timestamp() + 5 * (monitored.breach_seq + 1))
        assert {name for name, _labels in found} >= set(NAMES)

        # a newer monitored deployment of the same environment replaces it (one release per environment)
        seed(database_url, now=monitored.started_at + timedelta(minutes=5), state=DeploymentState.SUCCEEDED)
        later = scrape(a.client.get("/metrics", headers={"Authorization": f"Bearer {a.tokens['pat']}"}).text)
        assert series(later, "conveyor_monitor_state", state="succeeded") == 1
        assert len([k for k in later if k[0] == "conveyor_monitor_requests"]) == 1
        deployments = {dict(k[1])["state"] for k in later if k[0] == "conveyor_deployments"}
        assert deployments == {"rolled_back", "succeeded"}


def test_grafana_dashboard_queries_exported_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    assert len(exprs) >= 9
    queried = {name for e in exprs for name in re.findall(r"\bconveyor_[a-z0-9_]+", e)}
    exported = set(NAMES) | {"conveyor_deployments"}
    assert queried and queried <= exported, queried - exported
    assert {"conveyor_monitor_error_ratio", "conveyor_monitor_latency_p95_seconds"} <= queried
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
