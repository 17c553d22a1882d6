"""A monitored production deployment built through the store on a real database: service ``shop``
(local target, ``monitor:`` with thresholds and a regression rule), v1.0.0 serving before, v1.1.0
deployed, a window of 5 s intervals whose error rate climbs until the judgement (the domain's own
``judge``, as the engine calls it) finds a breach, a flag turned on during the window, and the
deployment rolled back. Faster than a real monitored deploy (tests/e2e/test_monitoring.py has
those); used by the chart's route test, ``conveyor watch``'s test and the browser screenshot."""

from __future__ import annotations

import textwrap
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor.domain.deployment import DeploymentKind, DeploymentState
from conveyor.domain.monitoring import LATENCY_BUCKETS, Window, judge
from conveyor.engine.monitoring import finding_json, rules_of
from conveyor.engine.transitions import transition
from conveyor.spec.loader import parse_spec
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
          Sentry: "https://sentry.example.com/issues/?query=release%3A{version}&environment={environment}&start={from_iso}&end={to_iso}"
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
    now: datetime


FLAG = {"flag": "new-checkout", "action": "flag.on", "actor": "eve", "raised": True}


def planned(start: datetime) -> list[tuple[int, datetime, Window, str, list[dict[str, Any]]]]:
    """The samples (seq, since, window, verdict, findings) up to and with the first breach."""
    spec = parse_spec(CONFIG).environment("production").monitor
    assert spec is not None
    previous = window(600, 3, slow=6)  # the previous release before the switch (its counts)
    out = []
    so_far: Window | None = None
    for seq, errors in enumerate(ERRORS):
        w = window(100, errors, slow=3 + errors // 2)
        so_far = w if so_far is None else so_far.merged(w)
        baseline = replace(previous, seconds=so_far.seconds)
        verdict = judge(so_far, baseline, rules_of(spec))
        since = start + timedelta(seconds=seq * INTERVAL)
        out.append((seq, since, w, verdict.state, [finding_json(f) for f in verdict.findings]))
        if verdict.state == "breach":
            return out
    raise AssertionError("the seeded window never breached")


def seed(
    database_url: str,
    now: datetime | None = None,
    state: DeploymentState = DeploymentState.ROLLED_BACK,
    samples: int | None = None,
) -> Monitored:
    """The deployment and its monitoring: the window started long enough before ``now`` for every
    interval to be past; ``samples`` of them stored (all, with the breach, when None)."""
    now = now or datetime.now(UTC).replace(microsecond=0)
    spec = parse_spec(CONFIG).environment("production").monitor
    assert spec is not None
    start = now - timedelta(seconds=INTERVAL * len(ERRORS))
    switched = start - timedelta(seconds=4)
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
                conn,
                deployment_id,
                previous_release_id=old.id,
                started_at=switched - timedelta(seconds=15),
                finished_at=now if state.finished else None,
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
    finally:
        db.dispose()
    plan = planned(start)
    monitored = Monitored(deployment_id, plan[-1][0], start, now)
    store_samples(database_url, monitored, 0, len(plan) if samples is None else samples, state)
    return monitored


def store_samples(
    database_url: str, monitored: Monitored, first: int, until: int, state: DeploymentState | None = None
) -> None:
    """Store planned samples [first, until); with the breach's, record it; then end in ``state``
    when it is a finished one."""
    plan = planned(monitored.started_at)
    flag = {**FLAG, "at": (monitored.started_at + timedelta(seconds=12)).isoformat()}
    db = Database(database_url)
    try:
        with db.begin() as conn:
            for seq, since, w, verdict, findings in plan[first:until]:
                end = since + timedelta(seconds=INTERVAL)
                monitor_samples.add_sample(
                    conn, monitored.deployment_id, seq, since, end, w, verdict, findings, monitored.now
                )
                monitor_samples.update_monitoring(conn, monitored.deployment_id, verdict=verdict)
                if verdict == "breach":
                    evidence = {"seq": seq, "at": end.isoformat(), "findings": [f for f in findings if f["breached"]]}
                    monitor_samples.update_monitoring(
                        conn, monitored.deployment_id, breach={**evidence, "flags": [flag]}, flags=[flag]
                    )
            if state is not None and state.finished:
                monitor_samples.update_monitoring(
                    conn, monitored.deployment_id, outcome="breach", ended_at=monitored.now
                )
                if store.get_deployment(conn, monitored.deployment_id).state == DeploymentState.MONITORING:
                    moved = transition(
                        conn, monitored.deployment_id, state, now=datetime.now(UTC), reason="breach (test world)"
                    )
                    assert moved
    finally:
        db.dispose()
