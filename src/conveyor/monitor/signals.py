"""The outside signals of one sample, together: ``monitor.queries`` run against Prometheus and
``monitor.alerts`` read from the alerts Alertmanager sent. The monitoring loop calls
``outside_findings`` once per interval (inside its sample step, whose stored result makes a rerun
read the same findings) and ``with_outside`` to add them to the built-in verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from conveyor.domain.monitoring import Finding, Verdict
from conveyor.monitor.alertmanager import findings_for
from conveyor.monitor.prometheus import QueryContext, prometheus_findings
from conveyor.settings import Settings
from conveyor.spec.models import MonitorSpec
from conveyor.store.db import Database


def outside_findings(
    settings: Settings,
    db: Database,
    spec: MonitorSpec,
    *,
    service: str,
    environment: str,
    version: str,
    previous_version: str | None,
    window_start: datetime,
    at: datetime,
) -> list[Finding]:
    """The Prometheus findings at ``at``, then the Alertmanager findings since ``window_start``
    (when the new release began to serve: alerts that began firing since then breach). Empty when
    ``monitor:`` has neither ``queries`` nor ``alerts``."""
    found: list[Finding] = []
    if spec.queries:
        context = QueryContext(service, environment, version, previous_version, spec.interval)
        found += prometheus_findings(
            spec.queries,
            settings.prometheus_url,
            at,
            context,
            timeout=settings.prometheus_timeout,
            token=settings.prometheus_token,
        )
    if spec.alerts is not None:
        with db.read() as conn:
            found += findings_for(conn, spec.alerts, service, environment, window_start)
    return found


def with_outside(verdict: Verdict, outside: Sequence[Finding]) -> Verdict:
    """The verdict with the outside findings added. A breached one makes it a breach whatever the
    traffic: a page from Alertmanager or a query over the limit needs no minimum of requests."""
    if not outside:
        return verdict
    state = "breach" if any(f.breached for f in outside) else verdict.state
    return replace(verdict, state=state, findings=(*verdict.findings, *outside))
