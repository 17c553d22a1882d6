"""A monitored production deployment built through the store on a real database: service ``shop``
(local target, ``monitor:`` with thresholds and a regression rule), v1.0.0 serving before, v1.1.0
deployed, a window of 5 s intervals whose error rate climbs until the judgement (the domain's own
``judge``, as the engine calls it) finds a breach, a flag turned on during the window, and the
deployment rolled back. Faster than a real monitored deploy (tests/e2e/test_monitoring.py has
those); used by the chart's route test, ``conveyor watch``'s test and the browser screenshot."""

from __future__ import annotations

import textwrap
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from conveyor.domain.deployment import DeploymentKind, DeploymentState
from conveyor.domain.monitoring import LATENCY_BUCKETS, Window, judge
from conveyor.engine.monitoring import finding_json, rules_of
from conveyor.runtime import _parse_cached
from conveyor.store import deployments as store
from conveyor.store import monitor_samples
from conveyor.store import services as service_store
from conveyor.store.db import Database

CONFIG = textwrap.dedent(
    """\
    service: shop
    run: python -m http.server $PORT
    environments:
      production:
        target: {kind: local, port: 18999}
        monitor:
          for: 60s
          interval: 5s
          min_requests: 50
          rollback_if: {error_rate: "> 2%", p95_ms: "> 800"}
          regression: {error_rate: 2x}
        links:
          Grafana: "https://grafana.example.com/d/conveyor?var-service={service}&from={from}&to={to}"
    """
)
ERRORS = (0, 1, 0, 1, 3, 6, 10, 14, 18, 20, 20, 20)  # per 100 requests, interval by interval
INTERVAL = 5.0


def window(requests: int, errors: int, slow: int = 0) -> Window:
    """``requests`` answered in 5 s, ``slow`` of them in 250-500 ms, the others in 10-25 ms."""
    buckets = [0] * (len(LATENCY_BUCKETS) + 1)
    buckets[next(i for i, b in enumerate(LATENCY_BUCKETS) if b >= 0.025)] += requests - slow
    buckets[next(i for i, b in enumerate(LATENCY_BUCKETS) if b >= 0.5)] += slow
    return Window(requests=requests, errors=errors, latency_buckets=tuple(buckets), seconds=INTERVAL)


@dataclass(frozen=True)
class Monitored:
    deployment_id: str
    breach_seq: int
    started_at: datetime


def seed(
    database_url: str, now: datetime | None = None, state: DeploymentState = DeploymentState.ROLLED_BACK
) -> Monitored:
    """The deployment and its monitoring, ending at ``now`` (the window started long enough before
    for every interval to be past)."""
    now = now or datetime.now(UTC).replace(microsecond=0)
    spec = _parse_cached(CONFIG, "conveyor.yml").environment("production").monitor
    assert spec is not None
    rules = rules_of(spec)
    start = now - timedelta(seconds=INTERVAL * len(ERRORS))
    switched = start - timedelta(seconds=4)
    previous = window(600, 3, slow=6)  # the previous release before the switch (its counts)
    db = Database(database_url)
    try:
        with db.begin() as conn:
            service, _ = service_store.upsert_service(conn, "shop", "test", "/nonexistent", CONFIG, now)
            old = store.ensure_release(conn, service.id, "a" * 40, "v1.0.0", "v1.0.0", start - timedelta(days=1))
            new = store.ensure_release(conn, service.id, "b" * 40, "v1.1.0", None, switched)
            deployment_id = str(uuid.uuid4())
            store.insert_deployment(
                conn,
                id=deployment_id,
                service_id=service.id,
                environment="production",
                kind=DeploymentKind.DEPLOY,
                ref="main",
                sha=new.sha,
                state=state,
                actor="rita",
                trigger="cli",
                now=switched - timedelta(seconds=20),
                plan=["prepare", "rollout", "smoke"],
                release_id=new.id,
            )
            store.set_fields(
                conn, deployment_id, previous_release_id=old.id, started_at=switched - timedelta(seconds=15)
            )
            monitor_samples.start(
                conn,
                deployment_id,
                started_at=start,
                switched_at=switched,
                seconds=spec.for_,
                interval=spec.interval,
                on_breach=spec.on_breach,
            )
            flag = {"flag": "new-checkout", "action": "flag.on", "actor": "eve", "raised": True}
            flag["at"] = (start + timedelta(seconds=12)).isoformat()
            so_far: Window | None = None
            breach_seq = -1
            for seq, errors in enumerate(ERRORS):
                since = start + timedelta(seconds=seq * INTERVAL)
                w = window(100, errors, slow=3 + errors // 2)
                so_far = w if so_far is None else so_far.merged(w)
                baseline = Window(
                    requests=previous.requests, errors=previous.errors, latency_buckets=previous.latency_buckets,
                    seconds=so_far.seconds,
                )  # fmt: skip
                verdict = judge(so_far, baseline, rules)
                findings = [finding_json(f) for f in verdict.findings]
                monitor_samples.add_sample(
                    conn,
                    deployment_id,
                    seq,
                    since,
                    since + timedelta(seconds=INTERVAL),
                    w,
                    verdict.state,
                    findings,
                    now,
                )
                if verdict.state == "breach":
                    breach_seq = seq
                    breaches = [f for f in findings if f["breached"]]
                    evidence = {"seq": seq, "at": (since + timedelta(seconds=INTERVAL)).isoformat()}
                    monitor_samples.update_monitoring(
                        conn,
                        deployment_id,
                        verdict="breach",
                        breach={**evidence, "findings": breaches, "flags": [flag]},
                        flags=[flag],
                    )
                    break
            assert breach_seq >= 0, "the seeded window never breached"
            if state.finished:
                monitor_samples.update_monitoring(conn, deployment_id, outcome="breach", ended_at=now)
                store.set_fields(conn, deployment_id, finished_at=now)
    finally:
        db.dispose()
    return Monitored(deployment_id, breach_seq, start)
