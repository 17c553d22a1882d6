"""The Alertmanager signal end to end with the real binaries: Prometheus scrapes a metrics endpoint
and evaluates an alerting rule (``for: 0s``) every second; the real Alertmanager routes the alert to
Conveyor's webhook receiver (a real server on a real port) with a reporter's bearer token. The test
flips the metric: the firing alert is kept and ``alert_findings`` names it for that service and
environment only; flipped back, the resolved notification closes it."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from tests.conftest import wait_until
from tests.monitor.promstack import Binary, MetricsTarget, alertmanager, prometheus, require

from conveyor.devserver import ServerThread, free_port, make_token, server_env
from conveyor.domain.monitoring import Finding
from conveyor.monitor.alertmanager import alert_findings
from conveyor.store.tables import audit_log, monitor_alerts

RULES = textwrap.dedent(
    """\
    groups:
      - name: shop
        rules:
          - alert: HighErrorRate
            expr: app_error_ratio > 0.05
            for: 0s
            labels: {severity: page}
            annotations: {summary: "error ratio {{ $value }}"}
    """
)


@dataclass
class Stack:
    target: MetricsTarget
    prometheus: Binary
    alertmanager: Binary
    server: ServerThread

    def findings(self, service: str, environment: str, since: datetime) -> list[Finding]:
        with self.server.runtime.db.read() as conn:
            return alert_findings(conn, service, environment, since)

    def logs(self) -> str:
        return f"--- prometheus\n{self.prometheus.output()}\n--- alertmanager\n{self.alertmanager.output()}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require("prometheus")
    require("prometheus-alertmanager")
    root = tmp_path_factory.mktemp("alerting")
    database_url = f"sqlite:///{root / 'conveyor.db'}"
    token = make_token(database_url, "alertmanager", ["reporter"])
    port = free_port()
    server = ServerThread(port, server_env(root / "home", database_url, port, poll_interval=0))
    target = MetricsTarget(token="scrape-token").start()
    for service, environment in (("shop", "production"), ("shop", "staging"), ("cart", "production")):
        target.set("app_error_ratio", 0.0, service=service, environment=environment)
    am = alertmanager(root / "alertmanager", f"{server.url}/api/v1/alerts/alertmanager", token)
    prom = prometheus(
        root / "prometheus", f"127.0.0.1:{target.port}", token=target.token, rules=RULES, alertmanager_port=am.port
    )
    try:
        server.start()
        am.start()
        prom.start()
        yield Stack(target, prom, am, server)
    finally:
        prom.stop()
        am.stop()
        target.stop()
        server.stop()


def test_a_firing_alert_is_a_breach_of_its_service_and_environment_only(stack: Stack) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    stack.target.set("app_error_ratio", 0.3, service="shop", environment="production")

    def fired() -> list[Finding]:
        return stack.findings("shop", "production", before)

    try:
        (found,) = wait_until(fired, timeout=40, what="Alertmanager to deliver the firing alert to Conveyor")
    except AssertionError:
        raise AssertionError(stack.logs()) from None
    assert (found.signal, found.breached) == ("alertmanager", True)
    assert found.note.startswith('alert HighErrorRate{environment="production"')
    assert 'service="shop"' in found.note and 'severity="page"' in found.note and "still firing" in found.note
    assert "error ratio 0.3" in found.note  # the annotation's summary
    assert stack.findings("shop", "staging", before) == []
    assert stack.findings("cart", "production", before) == []
    with stack.server.runtime.db.read() as conn:
        (row,) = conn.execute(select(monitor_alerts)).all()
        assert (row.receiver, row.reported_by, row.status) == ("conveyor", "alertmanager", "firing")
        audited = conn.execute(select(audit_log.c.actor).where(audit_log.c.action == "alerts.received"))
        assert audited.scalars().all()[0] == "alertmanager"

    stack.target.set("app_error_ratio", 0.0, service="shop", environment="production")

    def resolved() -> bool:
        with stack.server.runtime.db.read() as conn:
            return conn.execute(select(monitor_alerts.c.status)).scalar_one() == "resolved"

    try:
        wait_until(resolved, timeout=40, what="Alertmanager to deliver the resolved alert")
    except AssertionError:
        raise AssertionError(stack.logs()) from None
    (closed,) = stack.findings("shop", "production", before)
    assert "resolved at" in closed.note and closed.breached  # it fired inside the window: still a breach
    assert stack.findings("shop", "production", datetime.now(UTC) + timedelta(seconds=1)) == []
