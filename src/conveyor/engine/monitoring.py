"""Monitoring after a deploy: the loop of the deployment workflow between its last step and its end.

A deployment of an environment with ``monitor:`` moves running -> monitoring when its last step
succeeded (``enter``, called by ``pipeline.finish``), and its workflow goes on here (``watch``):
one DBOS step per interval (``sample``, keyed by the deployment and the interval's number) reads
[start + k*interval, start + (k+1)*interval) of the new release from the agent, stores it (once:
``store/monitor_samples.py``), and judges the window so far against the rules and the previous
release's window of the same length before the switch. Between intervals the workflow waits in
``DBOS.recv`` (durable), so a person's "accept now" / "roll back now" wakes it at once. The window's
start is stored with the deployment, so a server restarted during monitoring continues the same
window. The ends (succeeded, rolled back, by a person) are in ``engine/monitoring_end.py``.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from typing import Any

from dbos import DBOS

from conveyor.domain.deployment import DeploymentState
from conveyor.domain.monitoring import Finding, Rules, Verdict, Window, judge
from conveyor.engine import monitoring_end as end
from conveyor.engine.context import StepContext, load_context
from conveyor.engine.transitions import transition
from conveyor.runtime import Runtime, runtime
from conveyor.spec.models import MonitorSpec
from conveyor.store import deployments as store
from conveyor.store import monitor_samples as samples
from conveyor.store.monitor_samples import Monitoring

TOPIC = "monitoring"
log = logging.getLogger("conveyor.monitoring")
# the agent answers an interval for good once it ended a second ago (monitor/builtin.py)
GRACE_SECONDS = 1.2
NEXT, WAIT = "next", "wait"


def enter(rt: Runtime, ctx: StepContext) -> None:
    """running -> monitoring, with the window (from now, for ``monitor.for``) in the same transaction."""
    spec = ctx.env_spec.monitor
    assert spec is not None
    d, now = ctx.deployment, rt.clock.now()
    # the agent counts per whole second (an interval has the seconds that start in it): the window
    # starts on one, so the second monitoring began in is counted too
    start = now.replace(microsecond=0)
    with rt.db.begin() as conn:
        rollout = next((s for s in store.get_steps(conn, d.id) if s.name == "rollout"), None)
        switched = rollout.started_at if rollout is not None and rollout.started_at is not None else now
        moved = transition(
            conn,
            d.id,
            DeploymentState.MONITORING,
            now=now,
            actor=d.actor,
            expect=[DeploymentState.RUNNING],
            action="deployment.monitoring",
            details={
                "version": ctx.release.version if ctx.release else None,
                "for_seconds": spec.for_,
                "interval_seconds": spec.interval,
                "on_breach": spec.on_breach,
            },
        )
        if moved:
            samples.start(
                conn,
                d.id,
                started_at=start,
                switched_at=switched,
                seconds=spec.for_,
                interval=spec.interval,
                on_breach=spec.on_breach,
            )


def watch(deployment_id: str) -> str:
    """The loop, in the deployment workflow (deterministic: every decision is a step's output)."""
    total = window_size(deployment_id)
    seq = 0
    while seq < total:
        wait = seconds_until(deployment_id, seq)
        if wait > 0:
            DBOS.recv(TOPIC, timeout_seconds=wait)  # a person's decision wakes it early
        outcome = sample(deployment_id, seq)
        if outcome == WAIT:
            continue  # woken before the interval ended, with nothing decided
        if outcome != NEXT:
            return outcome
        seq += 1
    return conclude(deployment_id)


def wake(deployment_id: str) -> None:
    """Wake the deployment's loop (its workflow id is the deployment id). Best effort: the
    decision is stored, and the loop reads it at its next interval anyway."""
    try:
        DBOS.send(deployment_id, "look", topic=TOPIC)
    except Exception as exc:
        log.warning(
            "could not wake the monitoring of %s (it reads the decision at its next interval): %s", deployment_id, exc
        )


@DBOS.step()
def window_size(deployment_id: str) -> int:
    rt = runtime()
    with rt.db.read() as conn:
        mon = samples.get(conn, deployment_id)
    return mon.samples_total if mon is not None else 0


@DBOS.step()
def seconds_until(deployment_id: str, seq: int) -> float:
    """How long until interval ``seq`` can be read (0 when it can now, or a decision waits)."""
    rt = runtime()
    with rt.db.read() as conn:
        mon = samples.get(conn, deployment_id)
    if mon is None or mon.decision is not None:
        return 0.0
    _since, until = mon.bounds(seq)
    return max(0.0, (until - rt.clock.now()).total_seconds() + GRACE_SECONDS)


@DBOS.step()
def sample(deployment_id: str, seq: int) -> str:
    """Read, store and judge interval ``seq``; act on the verdict. Answers NEXT, WAIT, or the
    state the deployment ended in. Safe to run again: the stored sample is reused."""
    rt = runtime()
    ctx, mon, ended = _watched(rt, deployment_id)
    if ended is not None or mon is None:
        return ended or ctx.deployment.state.value
    since, until = mon.bounds(seq)
    if rt.clock.now() < until + timedelta(seconds=GRACE_SECONDS):
        return WAIT  # woken early: the agent answers an interval for good a second after it
    with rt.db.read() as conn:
        stored = samples.get_sample(conn, deployment_id, seq)
        earlier = [s for s in samples.samples(conn, deployment_id) if mon.judge_from <= s.seq < seq]
    if stored is None:
        window = new_window(ctx, since, until)
        so_far = window
        for s in earlier:
            so_far = s.window.merged(so_far)
        verdict = with_smoke(ctx, mon, since, until, judge_window(ctx, mon, so_far, until))
        findings = [finding_json(f) for f in verdict.findings]
        with rt.db.begin() as conn:
            stored = samples.add_sample(
                conn, deployment_id, seq, since, until, window, verdict.state, findings, rt.clock.now()
            )
            samples.update_monitoring(conn, deployment_id, verdict=stored.verdict)
    if stored.verdict != "breach":
        return NEXT
    return end.on_breach(rt, ctx, mon, stored)


@DBOS.step()
def conclude(deployment_id: str) -> str:
    """The window passed (or ran out below the minimum of requests): end it."""
    rt = runtime()
    ctx, mon, ended = _watched(rt, deployment_id)
    if ended is not None or mon is None:
        return ended or ctx.deployment.state.value
    return end.window_passed(rt, ctx, mon)


def _watched(rt: Runtime, deployment_id: str) -> tuple[StepContext, Monitoring | None, str | None]:
    """The deployment and its window, and the state it ended in if it is no longer watched, or if
    a person's decision or a cancel ends it now."""
    ctx = load_context(rt, deployment_id)
    with rt.db.read() as conn:
        mon = samples.get(conn, deployment_id)
    if ctx.deployment.state != DeploymentState.MONITORING or mon is None:
        return ctx, None, ctx.deployment.state.value
    if mon.decision is not None:
        return ctx, mon, end.by_person(rt, ctx, mon)
    if ctx.deployment.cancel_requested:
        return ctx, mon, end.cancelled(rt, ctx, mon)
    return ctx, mon, None


def new_window(ctx: StepContext, since: datetime, until: datetime) -> Window:
    """The new release's counts over [since, until); empty when the target has none to give."""
    version = ctx.release.version if ctx.release else ctx.deployment.sha
    found = read_window(ctx, version, since, until)
    return found if found is not None else Window(seconds=(until - since).total_seconds())


def previous_window(ctx: StepContext, mon: Monitoring, seconds: float) -> Window | None:
    """The previous release's own window of the same length, just before the switch."""
    if ctx.previous is None:
        return None
    return read_window(ctx, ctx.previous.version, mon.switched_at - timedelta(seconds=seconds), mon.switched_at)


def read_window(ctx: StepContext, version: str, since: datetime, until: datetime) -> Window | None:
    """The agent's per-release counters (the local target); None where there are none."""
    if ctx.env_spec.target.kind != "local":
        return None
    from conveyor.monitor.builtin import read_window as builtin

    home = ctx.runtime.settings.home
    return builtin(home, ctx.service.name, ctx.deployment.environment, version, since, until)


def judge_window(ctx: StepContext, mon: Monitoring, so_far: Window, until: datetime) -> Verdict:
    """The built-in judgement of the window so far, plus the outside signals at ``until``: the
    Prometheus queries and the Alertmanager alerts. An outside signal's breach counts whatever the
    router's traffic (it is not a share of the requests the window saw)."""
    spec = ctx.env_spec.monitor
    assert spec is not None
    verdict = judge(so_far, previous_window(ctx, mon, so_far.seconds), rules_of(spec))
    if not spec.queries and spec.alerts is None:
        return verdict
    from conveyor.monitor.signals import outside_findings, with_outside

    d = ctx.deployment
    outside = outside_findings(
        ctx.runtime.settings,
        ctx.runtime.db,
        spec,
        service=d.service,
        environment=d.environment,
        version=ctx.release.version if ctx.release else d.sha,
        previous_version=ctx.previous.version if ctx.previous else None,
        window_start=mon.switched_at,
        at=until,
    )
    return with_outside(verdict, outside)


def with_smoke(ctx: StepContext, mon: Monitoring, since: datetime, until: datetime, verdict: Verdict) -> Verdict:
    """``monitor.smoke_every``: when a smoke time falls in [since, until), the environment's smoke
    command runs again (durably, as ``smoke-monitor-N``: a rerun attaches to it); failing is a
    breach whatever the traffic."""
    spec, smoke = ctx.env_spec.monitor, ctx.env_spec.smoke
    if spec is None or spec.smoke_every is None or smoke is None:
        return verdict
    due = int((until - mon.started_at).total_seconds() // spec.smoke_every)
    if due <= int((since - mon.started_at).total_seconds() // spec.smoke_every):
        return verdict
    from conveyor.engine.steps.smoke import SMOKE_TIMEOUT

    outcome = ctx.run(f"smoke-monitor-{due}", smoke, default_timeout=SMOKE_TIMEOUT, rerun_interrupted=True)
    note = f"smoke test {due} during monitoring: " + ("passed" if outcome.ok else outcome.message)
    found = Finding("smoke", "check", None, "passes", None, not outcome.ok, note)
    state = "breach" if not outcome.ok else verdict.state
    return Verdict(state, (*verdict.findings, found))


def rules_of(spec: MonitorSpec) -> Rules:
    """``monitor:`` as the judgement takes it: "> 2%" is (">", 0.02), "2x" is 2.0."""
    limits: dict[str, tuple[str, float]] = {}
    for metric, threshold in spec.rollback_if.items():
        op = ">=" if threshold.startswith(">=") else ">"
        number = float(threshold.lstrip(">=").strip().rstrip("%"))
        limits[metric] = (op, number / 100 if threshold.endswith("%") else number)
    factors = {metric: float(factor.rstrip("x").strip()) for metric, factor in spec.regression.items()}
    return Rules(rollback_if=limits, regression=factors, min_requests=spec.min_requests)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None  # JSON has no infinity


def finding_json(f: Finding) -> dict[str, Any]:
    return {
        "signal": f.signal,
        "unit": f.unit,
        "value": _finite(f.value),
        "threshold": f.threshold,
        "baseline": _finite(f.baseline),
        "breached": f.breached,
        "note": f.note,
    }
