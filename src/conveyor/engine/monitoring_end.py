"""How monitoring ends: the window passed (succeeded, and only now the release's tag), a breach
(``on_breach``: roll back at once, alert and go on, or kill the flags raised meanwhile and judge
again), or a person's decision (accept now, roll back now). Every end goes through the transition
gateway; the evidence is kept on the deployment's ``monitorings`` row and in its reason."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from conveyor.audit import log as audit
from conveyor.auth.policy import Decision
from conveyor.auth.users import User
from conveyor.domain.deployment import DeploymentState
from conveyor.engine.context import StepContext
from conveyor.engine.nudges import nudge_sha
from conveyor.engine.steps.tag import promote
from conveyor.engine.transitions import transition
from conveyor.errors import ConveyorError
from conveyor.runtime import Runtime
from conveyor.store import deployments as store
from conveyor.store import monitor_samples as samples
from conveyor.store.monitor_samples import Monitoring, Sample
from conveyor.store.tables import audit_log
from conveyor.targets.base import target_for

NEXT = "next"
CONVEYOR = User(id=0, name="conveyor", roles=())  # who kills flags on a breach, in the audit log


def window_passed(rt: Runtime, ctx: StepContext, mon: Monitoring) -> str:
    with rt.db.read() as conn:
        stored = samples.samples(conn, mon.deployment_id)
    last = stored[-1] if stored else None
    if last is not None and last.verdict == "breach" and mon.on_breach != "alert":
        return roll_back_for_breach(rt, ctx, mon, last)  # kill_flags whose last interval was the judged one
    if last is None or last.verdict == "not_enough_traffic":
        note = traffic_note(last) if last is not None else "no interval was read"
        return succeed(rt, ctx, mon, "not_enough_traffic", f"not enough traffic to judge: {note}", ctx.deployment.actor)
    if mon.alerted:
        summary = breach_text(mon.alerted[-1]["findings"])
        reason = f"monitoring breached ({summary}); on_breach: alert kept it"
        return succeed(rt, ctx, mon, "alerted", reason, ctx.deployment.actor)
    return succeed(rt, ctx, mon, "passed", None, ctx.deployment.actor)


def by_person(rt: Runtime, ctx: StepContext, mon: Monitoring) -> str:
    who, why = mon.decided_by or "someone", mon.decision_reason or ""
    if mon.decision == "accept":
        return succeed(rt, ctx, mon, "accepted", f"accepted during monitoring by {who}: {why}", who)
    return roll_back(rt, ctx, mon, "rolled_back", f"rolled back during monitoring by {who}: {why}", who)


def on_breach(rt: Runtime, ctx: StepContext, mon: Monitoring, stored: Sample) -> str:
    breaches = [f for f in stored.findings if f["breached"]]
    with rt.db.read() as conn:
        flags = flag_changes(conn, ctx.deployment.service, ctx.deployment.environment, _since(ctx, mon))
    evidence: dict[str, Any] = {"seq": stored.seq, "at": stored.until.isoformat(), "findings": breaches, "flags": flags}
    if mon.on_breach == "alert":
        signals = {f["signal"] for f in breaches}
        known = mon.alerted or []
        if not known or {f["signal"] for f in known[-1]["findings"]} != signals:
            now = rt.clock.now()
            with rt.db.begin() as conn:
                samples.update_monitoring(conn, mon.deployment_id, alerted=[*known, evidence])
                _audit_breach(conn, ctx, now, evidence, "alert: recorded, still watching")
        return NEXT
    if mon.on_breach == "kill_flags" and mon.killed_flags and mon.judge_from > stored.seq:
        return NEXT  # this step ran again: the flags were killed for this very sample
    if mon.on_breach == "kill_flags" and mon.killed_flags is None:
        raised = list(dict.fromkeys(f["flag"] for f in flags if f["raised"]))
        killed = kill_flags(rt, ctx, raised, breach_text(breaches))
        now = rt.clock.now()
        with rt.db.begin() as conn:
            next_from = stored.seq + 1 if killed else mon.judge_from
            samples.update_monitoring(
                conn, mon.deployment_id, killed_flags=killed, judge_from=next_from, breach=evidence
            )
            action = f"kill_flags: killed {', '.join(killed)}, judging again" if killed else "kill_flags: none to kill"
            _audit_breach(conn, ctx, now, {**evidence, "killed_flags": killed}, action)
        if killed:
            return NEXT
    return roll_back_for_breach(rt, ctx, mon, stored, evidence)


def roll_back_for_breach(
    rt: Runtime, ctx: StepContext, mon: Monitoring, stored: Sample, evidence: dict[str, Any] | None = None
) -> str:
    breaches = [f for f in stored.findings if f["breached"]]
    if evidence is None:
        with rt.db.read() as conn:
            flags = flag_changes(conn, ctx.deployment.service, ctx.deployment.environment, _since(ctx, mon))
        evidence = {"seq": stored.seq, "at": stored.until.isoformat(), "findings": breaches, "flags": flags}
    with rt.db.begin() as conn:
        samples.update_monitoring(conn, mon.deployment_id, breach=evidence)
    reason = f"monitoring breach: {breach_text(breaches)}"
    if evidence["flags"]:
        reason += f"; flags changed meanwhile: {flags_text(evidence['flags'])}"
    if mon.killed_flags:
        reason += f"; killed {', '.join(mon.killed_flags)} first, still breaching"
    return roll_back(rt, ctx, mon, "breach", reason, "conveyor", breach=evidence)


def succeed(rt: Runtime, ctx: StepContext, mon: Monitoring, outcome: str, reason: str | None, actor: str) -> str:
    d = ctx.deployment
    tagged: str | None = None
    try:  # the release passed its checks: only now does its tag say so
        tagged = promote(ctx)
    except ConveyorError as exc:
        version = ctx.release.version if ctx.release else d.sha[:12]
        reason = f"{reason + '; ' if reason else ''}{version} serves, but its tag was not made: {exc}"
    _end(rt, ctx, DeploymentState.SUCCEEDED, outcome, reason, actor, {"tag": tagged} if tagged else {})
    nudge_sha(rt, d.sha)
    return DeploymentState.SUCCEEDED.value


def cancelled(rt: Runtime, ctx: StepContext, mon: Monitoring) -> str:
    """``conveyor cancel`` during monitoring: as for a running deployment, the previous release is
    put back and the deployment ends cancelled (read at the next interval)."""
    reason = "cancelled during monitoring"
    return roll_back(rt, ctx, mon, "cancelled", reason, ctx.deployment.actor, DeploymentState.CANCELLED)


def roll_back(
    rt: Runtime,
    ctx: StepContext,
    mon: Monitoring,
    outcome: str,
    reason: str,
    actor: str,
    done: DeploymentState = DeploymentState.ROLLED_BACK,
    breach: dict[str, Any] | None = None,
) -> str:
    """Put the previous release back (a warm router switch inside ``quick_rollback``) and end;
    ``breach`` (the evidence) goes into the audit entry's details."""
    d = ctx.deployment
    state: DeploymentState = DeploymentState.FAILED if done == DeploymentState.ROLLED_BACK else done
    if ctx.previous is None:
        reason += "; there is no previous release to go back to, so the release keeps serving"
    else:
        restored = target_for(ctx.env_spec.target.kind).restore(ctx, ctx.previous)
        if restored.ok:
            with rt.db.begin() as conn:
                store.set_current_release(conn, d.service_id, d.environment, ctx.previous.id, d.id, rt.clock.now())
            reason += f"; {ctx.previous.version} restored and serving"
            state = done
        else:
            reason += f"; restoring {ctx.previous.version} failed too: {restored.message}"
    _end(rt, ctx, state, outcome, reason, actor, {"breach": breach} if breach else {})
    return state.value


def _end(
    rt: Runtime,
    ctx: StepContext,
    state: DeploymentState,
    outcome: str,
    reason: str | None,
    actor: str,
    extra: dict[str, Any],
) -> None:
    """monitoring -> ``state``, with the window's outcome, in one transaction."""
    d, now = ctx.deployment, rt.clock.now()
    with rt.db.begin() as conn:
        samples.update_monitoring(conn, d.id, outcome=outcome, ended_at=now)
        transition(
            conn,
            d.id,
            state,
            now=now,
            actor=actor,
            reason=reason,
            expect=[DeploymentState.MONITORING],
            details={
                "monitoring": outcome,
                "sha": d.sha,
                "version": ctx.release.version if ctx.release else None,
                **extra,
            },
        )


def kill_flags(rt: Runtime, ctx: StepContext, keys: list[str], why: str) -> list[str]:
    """Kill each flag (audited as ``conveyor``); answers those killed."""
    from conveyor.flags import service as flags

    killed = []
    for key in keys:
        ref = (key, ctx.deployment.service, ctx.deployment.environment)
        try:
            flags.change_state(
                rt,
                CONVEYOR,
                lambda _scopes: None,  # other servers and this one see it within the flag cache's ttl
                ref,
                "flag.killed",
                lambda state: state.model_copy(update={"enabled": False}),
                lambda *_: Decision(True, "Conveyor kills flags raised during a breaching monitoring window"),
                {"reason": f"monitoring breach of deployment {ctx.deployment.id}: {why}"},
            )
            killed.append(key)
        except ConveyorError:
            continue  # deleted meanwhile: nothing to kill
    return killed


def flag_changes(conn: Connection, service: str, environment: str, since: datetime) -> list[dict[str, Any]]:
    """Flag changes in ``environment`` since ``since``, from the audit log; ``raised``: the change
    left the flag on, and it was off before or its rules changed."""
    rows = conn.execute(
        select(audit_log)
        .where(audit_log.c.action.like("flag.%"), audit_log.c.at >= since, audit_log.c.subject.like(f"{service}/%"))
        .order_by(audit_log.c.id)
    )
    changes = []
    for row in rows:
        details = row.details or {}
        if details.get("environment") != environment:
            continue
        before, after = details.get("before") or {}, details.get("after") or {}
        raised = bool(after.get("enabled")) and (
            not before.get("enabled") or after.get("strategies") != before.get("strategies")
        )
        changes.append(
            {
                "flag": row.subject.split("/", 1)[1],
                "action": row.action,
                "actor": row.actor,
                "at": row.at.isoformat(),
                "raised": raised,
            }
        )
    return changes


def _since(ctx: StepContext, mon: Monitoring) -> datetime:
    return ctx.deployment.started_at or mon.started_at


def _audit_breach(conn: Connection, ctx: StepContext, now: datetime, evidence: dict[str, Any], action: str) -> None:
    audit.append(
        conn,
        at=now,
        actor="conveyor",
        action="deployment.monitoring_breach",
        subject=ctx.deployment.id,
        details={
            "service": ctx.deployment.service,
            "environment": ctx.deployment.environment,
            "summary": breach_text(evidence["findings"]),
            "then": action,
            **evidence,
        },
    )


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "ms":
        return f"{value:.0f} ms"
    return f"{value:g}{' ' + unit if unit and unit != 'count' else ''}"


def breach_text(findings: list[dict[str, Any]]) -> str:
    """One line per breached signal: its value, the rule, and the previous release's value."""
    parts = []
    for f in findings:
        if f["unit"] in ("alert", "check"):  # an alert, or a smoke test: its note says what happened
            parts.append(str(f["note"]))
            continue
        text = f"{f['signal']} {format_value(f['value'], f['unit'])} against {f['threshold']}"
        if f.get("baseline") is not None:
            text += f" (previous release {format_value(f['baseline'], f['unit'])})"
        parts.append(text)
    return "; ".join(parts) or "a signal breached"


def flags_text(flags: list[dict[str, Any]]) -> str:
    return ", ".join(f"{f['flag']} ({f['action'].removeprefix('flag.')} by {f['actor']})" for f in flags)


def traffic_note(sample: Sample) -> str:
    found = next((f for f in sample.findings if f["signal"] == "requests"), None)
    return str(found["note"]).removeprefix("not enough traffic to judge: ") if found else ""
