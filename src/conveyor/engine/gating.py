"""Pending deployments: a workflow per deployment that waits, durably, until every gate passes,
then puts the deployment on its environment's queue. It is woken by a message whenever evidence
arrives (an approval, a check, a tick, a review, a staging run) and looks again at least every
minute; a deployment that waits longer than ``expire_after`` is cancelled with the reason.

Where the environment lints its migrations, the workflow first lints the deployment's SQL
(``engine/schema_lint.analyse``, one durable step): the ``migrations`` gate judges that report."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from dbos import DBOS, SetWorkflowID

from conveyor.domain.deployment import DeploymentState
from conveyor.domain.migrations import MigrationReport
from conveyor.engine import evidence, migration_acks, pipeline, schema_lint
from conveyor.engine.nudges import GATE_TOPIC, gate_workflow_id
from conveyor.engine.transitions import gates_evaluated, transition
from conveyor.gates.migrations import MigrationsGate
from conveyor.runtime import Runtime, runtime
from conveyor.store import deployments as store
from conveyor.store import schema_changes
from conveyor.store import services as service_store
from conveyor.store.records import DeploymentRecord

RECHECK_SECONDS = 60.0
log = logging.getLogger("conveyor.gates")


def start_gate_workflow(d: DeploymentRecord) -> None:
    with SetWorkflowID(gate_workflow_id(d.id)):
        DBOS.start_workflow(gate_workflow, d.id)


@DBOS.workflow()
def gate_workflow(deployment_id: str) -> str:
    lint_step(deployment_id)
    while True:
        verdict = gate_step(deployment_id)
        if verdict["state"] == "passed":
            pipeline.enqueue_by_id(deployment_id)
            return "passed"
        if verdict["state"] != "waiting":
            return str(verdict["state"])
        DBOS.recv(GATE_TOPIC, timeout_seconds=verdict["wait"])


@DBOS.step()
def lint_step(deployment_id: str) -> None:
    """Lint the SQL of a pending deployment whose environment lints its migrations, and record the
    report (idempotent: a report already recorded is kept). A lint that cannot run at all is
    recorded as the report's error, which the gate shows (and an acknowledgement may cover)."""
    rt = runtime()
    with rt.db.read() as conn:
        d = store.get_deployment(conn, deployment_id)
    spec = rt.spec_of(_config(rt, d))
    if d.state != DeploymentState.PENDING or not MigrationsGate().applies(spec, spec.environment(d.environment)):
        return
    try:
        schema_lint.analyse(rt, deployment_id)
    except Exception as exc:  # recorded as the report's error: the gate names it instead of hanging
        log.exception("the lint of deployment %s's migrations failed", deployment_id)
        with rt.db.begin() as conn:
            schema_changes.save_report(
                conn,
                deployment_id=d.id,
                service_id=d.service_id,
                environment=d.environment,
                sha=d.sha,
                report=MigrationReport("none", "", error=f"the lint could not run: {exc}"),
                now=rt.clock.now(),
            )
    migration_acks.tick_if_acknowledged(rt, deployment_id)  # acknowledged before it was requested


@DBOS.step()
def gate_step(deployment_id: str) -> dict[str, Any]:
    rt = runtime()
    with rt.db.begin() as conn:
        d = store.get_deployment(conn, deployment_id)
    if d.state != DeploymentState.PENDING:
        return {"state": "done"}
    results = evidence.evaluate_deployment(rt, d)
    now = rt.clock.now()
    spec = rt.spec_of(_config(rt, d))
    env = spec.environment(d.environment)
    failing = [r for r in results if not r.passed]
    with rt.db.begin() as conn:
        gates_evaluated(conn, d, results, now=now)
        if not failing:
            transition(
                conn,
                d.id,
                DeploymentState.QUEUED,
                now=now,
                expect=[DeploymentState.PENDING],
                action="deployment.gates_passed",
                details={"gates": [r.gate for r in results]},
            )
            return {"state": "passed"}
        final = [r for r in failing if not r.waitable]
        expires = d.created_at + timedelta(seconds=env.gates.expire_after)
        closed = window_closed(d, results)
        if final or closed or now >= expires:
            why = "; ".join(f"{r.gate}: {r.reason}" for r in failing)
            if final:
                reason = f"refused: {why}"
            elif closed:
                reason = f"the deploy window closed before its gates passed: {why}"
            else:
                reason = f"expired after waiting {env.gates.expire_after:.0f}s for: {why}"
            transition(
                conn,
                d.id,
                DeploymentState.CANCELLED,
                now=now,
                reason=reason,
                expect=[DeploymentState.PENDING],
                action="deployment.expired" if not final else "deployment.refused",
            )
            return {"state": "expired"}
    moments = [expires, *schedule_moments(results)]
    wait = min([RECHECK_SECONDS] + [(m - now).total_seconds() + 0.05 for m in moments if m > now])
    return {"state": "waiting", "wait": max(0.05, wait)}


def _schedule(results: list[Any]) -> Any:
    return next((r for r in results if r.gate == "schedule"), None)


def schedule_moments(results: list[Any]) -> list[datetime]:
    """When the schedule next opens or closes: the waiting workflow wakes right then."""
    found = _schedule(results)
    if found is None:
        return []
    return [datetime.fromisoformat(v) for k in ("next_open", "closes_at") if (v := found.details.get(k))]


def window_closed(d: DeploymentRecord, results: list[Any]) -> bool:
    """A --when-open deployment whose window opened and closed again while other gates held it."""
    now = _schedule(results)
    before = next((g for g in d.gates or [] if g["gate"] == "schedule"), None)
    return bool(d.when_open and now is not None and before and before["passed"] and not now.passed and not d.emergency)


def _config(rt: Runtime, d: DeploymentRecord) -> str:
    with rt.db.read() as conn:
        return service_store.get_service_by_id(conn, d.service_id).config_text
