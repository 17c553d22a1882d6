"""Prometheus metrics of the server: deployments by state and step durations, read from the
database at scrape time (the server keeps no counters of its own that a restart would lose).
Scraping needs a bearer token: CONVEYOR_METRICS_TOKEN, or any user's API token."""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from conveyor.api.deps import RuntimeDep, current_user
from conveyor.api.monitoring_metrics import MonitoringCollector
from conveyor.runtime import Runtime
from conveyor.store.tables import deployments, services

router = APIRouter(tags=["metrics"])


class DeploymentCollector(Collector):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "conveyor_deployments",
            "Deployments by service, environment and state",
            labels=["service", "environment", "state"],
        )
        query = (
            select(services.c.name, deployments.c.environment, deployments.c.state, func.count())
            .join(services, services.c.id == deployments.c.service_id)
            .group_by(services.c.name, deployments.c.environment, deployments.c.state)
        )
        with self.rt.db.begin() as conn:
            for row in conn.execute(query):
                gauge.add_metric([str(row[0]), str(row[1]), str(row[2])], float(row[3]))
        yield gauge


def _scraper_allowed(request: Request, rt: RuntimeDep) -> None:
    """The dedicated metrics token (compared in constant time), else a user's API token (401 if neither)."""
    expected = rt.settings.metrics_token
    header = request.headers.get("authorization", "")
    sent = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if expected and sent and hmac.compare_digest(sent.encode(), expected.encode()):
        return
    current_user(request, rt)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition format"},
        401: {"description": "no token, or not a valid one"},
    },
)
def metrics(request: Request, rt: RuntimeDep) -> Response:
    """Deployments by service, environment and state. Prometheus: `authorization: {credentials: TOKEN}`."""
    _scraper_allowed(request, rt)
    registry = CollectorRegistry()
    registry.register(DeploymentCollector(rt))
    registry.register(MonitoringCollector(rt))  # the monitoring signals per release
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")
