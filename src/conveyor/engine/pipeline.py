"""The deployment workflow: begin, each step of the plan, finish. Every call below that is a
DBOS step is checkpointed, so a server killed at any moment resumes where it stopped: finished
steps are not run again, and the interrupted one picks up its durable process (engine/process.py).
"""

from __future__ import annotations

from typing import Any

from dbos import DBOS, SetEnqueueOptions, SetWorkflowID
from dbos._context import MaxPriority

from conveyor.domain.deployment import DeploymentKind, DeploymentState, StepState
from conveyor.domain.schema_gap import SchemaChange, statements
from conveyor.engine import monitoring, queue_wake
from conveyor.engine.context import StepContext, StepOutcome, context_in, load_context
from conveyor.engine.evidence import evaluate_deployment, has_gates
from conveyor.engine.history import superseded
from conveyor.engine.nudges import nudge
from conveyor.engine.process import InterruptedRun
from conveyor.engine.steps import STEPS, load_builtin_steps
from conveyor.engine.steps.tag import make_tag
from conveyor.engine.transitions import step_finished, step_started, transition
from conveyor.errors import ConveyorError
from conveyor.runtime import QUEUE_NAME, Runtime, runtime
from conveyor.store import deployments as store
from conveyor.store import schema_changes
from conveyor.store.evidence import pending_with_sha
from conveyor.store.records import DeploymentRecord
from conveyor.targets.base import target_for

load_builtin_steps()

_ACTIVE = (DeploymentState.QUEUED, DeploymentState.RUNNING)
GATED_KINDS = (DeploymentKind.DEPLOY, DeploymentKind.MIGRATE)  # rollbacks are not held up by gates


def enqueue(deployment: DeploymentRecord) -> None:
    """Put the deployment's workflow on its environment's queue (idempotent by workflow id).

    DBOS orders a partition by priority, then creation time, which SQLite records to the second
    only; the request's sequence number as priority keeps strict request order.
    """
    partition = f"{deployment.service}/{deployment.environment}"
    priority = min(deployment.seq, MaxPriority)
    with SetWorkflowID(deployment.id), SetEnqueueOptions(queue_partition_key=partition, priority=priority):
        DBOS.enqueue_workflow(QUEUE_NAME, deployment_workflow, deployment.id)
    queue_wake.poke()  # an idle environment starts it now, not at the next poll


def enqueue_by_id(deployment_id: str) -> None:
    rt = runtime()
    with rt.db.read() as conn:
        enqueue(store.get_deployment(conn, deployment_id))


@DBOS.workflow()
def deployment_workflow(deployment_id: str) -> str:
    plan = begin(deployment_id)
    failed: str | None = None
    outcome: dict[str, Any] = {"ok": True, "message": "", "cancelled": False}
    for name in plan or []:
        outcome = run_step(deployment_id, name)
        if not outcome["ok"]:
            failed = name
            break
    if plan is None:
        return "skipped"
    state = finish(deployment_id, failed, outcome["message"], outcome["cancelled"])
    if state == DeploymentState.MONITORING.value:  # the environment stays held while it is watched
        state = monitoring.watch(deployment_id)
    return state


@DBOS.step()
def begin(deployment_id: str) -> list[str] | None:
    """Take the environment: move queued -> running, or stop if cancelled or superseded.

    Anything that goes wrong here (an unknown commit, a repository gone) fails the deployment
    with the reason: it never stays queued."""
    rt = runtime()
    try:
        return _begin(rt, deployment_id)
    except Exception as exc:
        text = str(exc) if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}"
        reason = f"could not start: {text}"
        now = rt.clock.now()
        with rt.db.begin() as conn:
            transition(conn, deployment_id, DeploymentState.FAILED, now=now, reason=reason, expect=_ACTIVE)
        return None


def _begin(rt: Runtime, deployment_id: str) -> list[str] | None:
    """One read, then one write that starts it (each move re-checks the state it expects)."""
    now = rt.clock.now()
    with rt.db.read() as conn:
        ctx = context_in(conn, rt, deployment_id)
        d, service = ctx.deployment, ctx.service
        if d.state.finished:
            return None
        current = store.current_release(conn, d.service_id, d.environment)
        deploying = d.kind == DeploymentKind.DEPLOY and not d.cancel_requested
        behind = superseded(conn, ctx.repo, service, d.environment, d.sha) if deploying else None
    if d.cancel_requested:
        with rt.db.begin() as conn:
            transition(
                conn, d.id, DeploymentState.CANCELLED, now=now, reason="cancelled before it started", expect=_ACTIVE
            )
        return None
    if behind is not None:
        with rt.db.begin() as conn:
            transition(
                conn,
                d.id,
                DeploymentState.CANCELLED,
                now=now,
                reason=behind,
                expect=_ACTIVE,
                action="deployment.superseded",
                steps=StepState.SKIPPED,
            )
        return None
    if d.kind in GATED_KINDS and has_gates(rt, service, d.environment):
        failing = [r for r in evaluate_deployment(rt, d) if not r.passed]
        if failing:  # e.g. a check turned red after the approvals came in
            reason = "a gate no longer passes at start: " + "; ".join(f"{r.gate}: {r.reason}" for r in failing)
            with rt.db.begin() as conn:
                transition(conn, d.id, DeploymentState.FAILED, now=now, reason=reason, expect=_ACTIVE)
            return None
    # a migration alone names no release unless it is the serving one's: it never goes into service
    version = None
    if d.release_id is None and ctx.env_spec.tag is None and d.kind != DeploymentKind.MIGRATE:
        version = ctx.repo.version_tag_at(d.sha) or ctx.repo.describe(d.sha)
    with rt.db.begin() as conn:
        release_id = d.release_id
        if version is not None:
            release_id = store.ensure_release(conn, d.service_id, d.sha, version, None, now).id
        transition(
            conn,
            d.id,
            DeploymentState.RUNNING,
            now=now,
            actor=d.actor,
            expect=[DeploymentState.QUEUED],
            action="deployment.started",
            details={"service": service.name, "environment": d.environment, "sha": d.sha},
            release_id=release_id,
            previous_release_id=current.id if current else None,
        )
        return [s.name for s in store.get_steps(conn, d.id)]


@DBOS.step()
def run_step(deployment_id: str, name: str) -> dict[str, Any]:
    rt = runtime()
    with rt.db.begin() as conn:  # the step's context and its start: one transaction
        ctx = context_in(conn, rt, deployment_id, defer_writes=True)
        if ctx.deployment.cancel_requested:
            return {"ok": False, "message": f"cancelled before {name}", "cancelled": True}
        step_started(conn, deployment_id, name, now=rt.clock.now())
    try:
        outcome = STEPS.get(name)(ctx)
    except (ConveyorError, InterruptedRun) as exc:
        outcome = StepOutcome(False, str(exc))
    except Exception as exc:  # a bug in a step must fail the deployment, not wedge the workflow
        outcome = StepOutcome(False, f"{name} crashed: {type(exc).__name__}: {exc}")
    state = StepState.SUCCEEDED if outcome.ok else (StepState.CANCELLED if outcome.cancelled else StepState.FAILED)
    with rt.db.begin() as conn:  # the step's own writes and its end: one transaction
        for change in ctx.deferred or ():
            change(conn)
        step_finished(
            conn, deployment_id, name, state, now=rt.clock.now(), message=outcome.message, output=outcome.output
        )
    return {"ok": outcome.ok, "message": outcome.message, "cancelled": outcome.cancelled}


@DBOS.step()
def finish(deployment_id: str, failed: str | None, message: str, cancelled: bool) -> str:
    rt = runtime()
    ctx = load_context(rt, deployment_id)
    d = ctx.deployment
    if d.state.finished or d.state == DeploymentState.MONITORING:
        return d.state.value
    if failed is None and ctx.env_spec.monitor is not None and d.kind == DeploymentKind.DEPLOY:
        monitoring.enter(rt, ctx)  # the tag waits for the end of the window
        return DeploymentState.MONITORING.value
    tagged: str | None = None
    if failed is None and d.kind == DeploymentKind.MIGRATE:  # the serving release stays; nothing to tag
        state, reason = DeploymentState.SUCCEEDED, None
    elif failed is None:
        state, reason = DeploymentState.SUCCEEDED, None
        try:  # the release serves and passed its checks: only now does its tag say so
            tagged = make_tag(ctx)  # recorded on the release with the move below
        except ConveyorError as exc:
            reason = f"{ctx.release.version if ctx.release else d.sha[:12]} serves, but its tag was not made: {exc}"
    elif d.with_database and _database_touched(rt, deployment_id):
        # the older schema is in place (or half so): the newer code must not come back over it
        state = DeploymentState.CANCELLED if cancelled else DeploymentState.FAILED
        reason = f"{failed}: {message}" + _held_in_maintenance(ctx, failed, message)
    else:
        state = DeploymentState.CANCELLED if cancelled else DeploymentState.FAILED
        reason = f"{failed}: {message}"
        steps = {s.name: s.state for s in _steps(rt, deployment_id)}
        touched = "rollout" in steps and steps["rollout"] != StepState.PENDING
        if touched and ctx.previous is not None:
            restored = target_for(ctx.env_spec.target.kind).restore(ctx, ctx.previous)
            if restored.ok:
                with rt.db.begin() as conn:
                    store.set_current_release(conn, d.service_id, d.environment, ctx.previous.id, d.id, rt.clock.now())
                reason += f"; {ctx.previous.version} restored and serving" + _schema_left(
                    rt, d.id, ctx.previous.version
                )
                # a rollback that failed is a failed deployment, not one that was rolled back
                if not cancelled and failed != "rollout" and d.kind == DeploymentKind.DEPLOY:
                    state = DeploymentState.ROLLED_BACK
            else:
                reason += f"; restoring {ctx.previous.version} failed too: {restored.message}"
    now = rt.clock.now()
    waiting: list[str] = []
    with rt.db.begin() as conn:
        if tagged is not None and ctx.release is not None:
            store.set_release_tag(conn, ctx.release.id, tagged)
        transition(
            conn,
            d.id,
            state,
            now=now,
            actor=d.actor,
            reason=reason,
            expect=[DeploymentState.RUNNING],
            details={
                "reason": reason,
                "sha": d.sha,
                "version": ctx.release.version if ctx.release else None,
                **({"tag": tagged} if state == DeploymentState.SUCCEEDED and tagged else {}),
            },
        )
        if state == DeploymentState.SUCCEEDED:  # a staging run may be what a production deployment waits for
            waiting = pending_with_sha(conn, d.sha)
    nudge(waiting)
    return state.value


def _database_touched(rt: Runtime, deployment_id: str) -> bool:
    """Whether a with-database rollback's ``database`` step ran (even partly)."""
    return any(s.name == "database" and s.state != StepState.PENDING for s in _steps(rt, deployment_id))


def _held_in_maintenance(ctx: StepContext, failed: str, message: str) -> str:
    """What a with-database rollback that failed at or after its database step leaves, and what to do."""
    d, env = ctx.deployment, ctx.deployment.environment
    target = ctx.release.version if ctx.release else d.sha[:12]
    if "maintenance mode stays on" in message:  # the database step said so itself
        return ""
    newer = ctx.previous.version if ctx.previous else "the newer release"
    held = f"; maintenance mode stays on in {env}"
    off = f"`conveyor maintenance {env} off`"
    if failed == "database":
        return (
            f"{held}: the database may be partly rolled back towards {target}'s schema, so {newer}'s code "
            f"was not put back over it; check the database, then {off} or `conveyor rollback {env} --with-database`"
        )
    if failed == "rollout":
        return (
            f"{held}: the database was rolled back to {target}'s schema, so {newer}'s code was not put back "
            f"over it; fix the cause and run `conveyor rollback {env} --to {target}` (the code alone), then {off}"
        )
    return (
        f"{held}: the database was rolled back to {target}'s schema and {target}'s code serves behind the "
        f"maintenance page; {newer}'s code was not put back over it; check {target}, then {off}"
    )


def _schema_left(rt: Runtime, deployment_id: str, version: str) -> str:
    """A restore puts the code back, not the database: say so when this deployment's migration ran
    and was destructive (docs/database.md, "A failed deploy")."""
    with rt.db.read() as conn:
        run = schema_changes.run_for(conn, deployment_id)
        report = schema_changes.report_for(conn, deployment_id) if run is not None and run.ok else None
    if report is None or not report.destructive:
        return ""
    return (
        f"; the database was not taken back: {version} now runs on the schema this deployment's migration "
        f"changed ({statements((SchemaChange(deployment_id, version, report.destructive),))}); check that "
        f"{version}'s code does not read it, or restore the database by hand (docs/database.md)"
    )


def _steps(rt: Runtime, deployment_id: str) -> list[Any]:
    with rt.db.read() as conn:
        return store.get_steps(conn, deployment_id)
