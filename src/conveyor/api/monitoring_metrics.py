"""Monitoring signals on the server's ``/metrics`` (api/metrics.py), for a team's own Grafana:
per service and environment, the latest monitored deployment's release, its latest interval
(requests, error ratio, p95 latency; base units, as Prometheus names them), the verdict of its
window so far and the deployment's state. Read from the stored samples at scrape time, so a
restarted server answers the same. An example dashboard over these series:
docs/grafana-dashboard.json."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import and_, func, select

from conveyor.runtime import Runtime
from conveyor.store import monitor_samples as store
from conveyor.store.tables import deployments, monitorings, releases, services

LABELS = ["service", "environment", "release"]
VERDICTS = ("healthy", "breach", "not_enough_traffic")
STATES = ("monitoring", "succeeded", "rolled_back", "failed", "cancelled")
# every series this collector exports (the Grafana example's test checks it queries only these)
NAMES = (
    "conveyor_monitor_requests",
    "conveyor_monitor_errors",
    "conveyor_monitor_error_ratio",
    "conveyor_monitor_latency_p95_seconds",
    "conveyor_monitor_interval_seconds",
    "conveyor_monitor_sample_timestamp_seconds",
    "conveyor_monitor_window_progress_ratio",
    "conveyor_monitor_verdict",
    "conveyor_monitor_state",
)


class MonitoringCollector(Collector):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = {
            "requests": GaugeMetricFamily(
                NAMES[0], "Requests seen by the release in its latest monitoring interval", labels=LABELS
            ),
            "errors": GaugeMetricFamily(
                NAMES[1], "5xx answers and unanswered requests in the latest interval", labels=LABELS
            ),
            "ratio": GaugeMetricFamily(NAMES[2], "Error ratio (0-1) of the latest interval", labels=LABELS),
            "p95": GaugeMetricFamily(NAMES[3], "p95 latency of the latest interval's answers", labels=LABELS),
            "interval": GaugeMetricFamily(NAMES[4], "Length of the latest interval", labels=LABELS),
            "at": GaugeMetricFamily(NAMES[5], "Unix time the latest interval ended", labels=LABELS),
            "progress": GaugeMetricFamily(NAMES[6], "Share of the monitoring window sampled so far", labels=LABELS),
            "verdict": GaugeMetricFamily(
                NAMES[7],
                "1 for the verdict of the window so far (healthy, breach, not_enough_traffic)",
                labels=[*LABELS, "verdict"],
            ),
            "state": GaugeMetricFamily(
                NAMES[8], "1 for the state of the latest monitored deployment", labels=[*LABELS, "state"]
            ),
        }
        with self.rt.db.read() as conn:
            latest = (
                select(
                    deployments.c.service_id,
                    deployments.c.environment,
                    func.max(monitorings.c.started_at).label("started_at"),
                )
                .join(deployments, deployments.c.id == monitorings.c.deployment_id)
                .group_by(deployments.c.service_id, deployments.c.environment)
                .subquery()
            )
            rows = conn.execute(
                select(
                    services.c.name,
                    deployments.c.environment,
                    releases.c.version,
                    deployments.c.sha,
                    deployments.c.state,
                    monitorings.c.deployment_id,
                )
                .select_from(monitorings)
                .join(deployments, deployments.c.id == monitorings.c.deployment_id)
                .join(services, services.c.id == deployments.c.service_id)
                .outerjoin(releases, releases.c.id == deployments.c.release_id)
                .join(
                    latest,
                    and_(
                        latest.c.service_id == deployments.c.service_id,
                        latest.c.environment == deployments.c.environment,
                        latest.c.started_at == monitorings.c.started_at,
                    ),
                )
                .order_by(services.c.name, deployments.c.environment)
            ).all()
            seen: set[tuple[str, str]] = set()
            for row in rows:
                service, environment, state = str(row[0]), str(row[1]), str(row[4])
                if (service, environment) in seen:
                    continue  # two windows started in the same instant: the first one
                seen.add((service, environment))
                labels = [service, environment, str(row[2] or str(row[3])[:12])]
                mon = store.get(conn, str(row[5]))
                samples = store.samples(conn, str(row[5]))
                for name in STATES:
                    g["state"].add_metric([*labels, name], 1.0 if state == name else 0.0)
                if mon is None or not samples:
                    continue
                last = samples[-1]
                w = last.window
                g["requests"].add_metric(labels, float(w.seen))
                g["errors"].add_metric(labels, float(w.errors))
                g["ratio"].add_metric(labels, w.error_rate)
                p95 = w.quantile_ms(0.95)
                if p95 is not None:
                    g["p95"].add_metric(labels, p95 / 1000)
                g["interval"].add_metric(labels, w.seconds)
                g["at"].add_metric(labels, last.until.timestamp())
                g["progress"].add_metric(labels, min(1.0, len(samples) / max(mon.samples_total, 1)))
                for name in VERDICTS:
                    g["verdict"].add_metric([*labels, name], 1.0 if last.verdict == name else 0.0)
        yield from g.values()
