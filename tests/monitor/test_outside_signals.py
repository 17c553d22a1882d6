"""The outside signals of one sample together (monitor/signals.py), as the monitoring loop asks
for them: the Prometheus findings and the Alertmanager findings of ``monitor:``, added to the
built-in verdict, where a breached one makes a breach whatever the traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from conveyor.devserver import free_port
from conveyor.domain.monitoring import Finding, Verdict
from conveyor.monitor.signals import outside_findings, with_outside
from conveyor.settings import Settings
from conveyor.spec.models import MonitorSpec
from conveyor.spec.monitor_signals import AlertsSpec, QuerySpec
from conveyor.store.alerts import AlertInstance, record_alerts
from conveyor.store.db import Database

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
QUERY = QuerySpec(query='sum(x{service="{service}"})', threshold="> 1")


def _spec(**fields: object) -> MonitorSpec:
    # model_construct: monitor.queries and monitor.alerts are refused at load until the loop reads them
    return MonitorSpec.model_construct(**fields)


def test_queries_then_alerts_and_none_without_either(db: Database, tmp_path: Path) -> None:
    firing = AlertInstance(
        "f1", "firing", T0, None, {"alertname": "Down", "service": "shop", "environment": "production"}, {}, None
    )
    with db.begin() as conn:
        record_alerts(conn, [firing], "conveyor", "alertmanager", T0)
    settings = Settings(home=tmp_path, prometheus_url=f"http://127.0.0.1:{free_port()}", prometheus_timeout=2)
    where = {"service": "shop", "environment": "production", "version": "v2", "previous_version": "v1"}
    at = {"window_start": T0 - timedelta(minutes=1), "at": T0 + timedelta(minutes=2)}
    spec = _spec(queries={"errors": QUERY}, alerts=AlertsSpec(), interval=5.0)
    query, alert = outside_findings(settings, db, spec, **where, **at)
    assert (query.signal, query.value, query.breached) == ("errors", None, False)
    assert "unreachable" in query.note
    assert (alert.signal, alert.breached) == ("alertmanager", True) and alert.note.startswith("alert Down{")
    assert outside_findings(settings, db, _spec(), **where, **at) == []
    staging = {**where, "environment": "staging"}
    assert outside_findings(settings, db, _spec(alerts=AlertsSpec()), **staging, **at) == []


def test_a_breached_outside_finding_makes_a_breach_whatever_the_traffic() -> None:
    page = Finding("alertmanager", "alert", 1.0, "firing", None, True, "alert Down")
    quiet = Finding("errors", "", 0.0, "> 1", None, False, "errors = 0")
    thin = Verdict("not_enough_traffic", ())
    assert with_outside(thin, [page]) == Verdict("breach", (page,))
    assert with_outside(thin, [quiet]) == Verdict("not_enough_traffic", (quiet,))
    assert with_outside(Verdict("healthy", (quiet,)), []) == Verdict("healthy", (quiet,))
