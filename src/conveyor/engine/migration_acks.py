"""A deployment's migrations as people see them, and a release manager's acknowledgement of the
lint's findings (docs/database.md). An acknowledgement holds for the commit (service and SHA), so
one covers staging and production; it is audited, ticks ``migrations_reviewed`` on the pending
deployments of that commit whose checklist has it (and on the commit's later deployments, once
their report is covered: ``tick_if_acknowledged``), and wakes their gate workflows."""

from __future__ import annotations

from typing import Any

from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth.policy import may_acknowledge_migrations
from conveyor.auth.users import User
from conveyor.engine import nudges
from conveyor.errors import Conflict, InvalidInput
from conveyor.gates.migrations import covered_rules, open_rules, rules_to_acknowledge
from conveyor.runtime import Runtime
from conveyor.store import deployments as store
from conveyor.store import evidence, schema_changes
from conveyor.store import services as service_store

CHECKLIST_ITEM = "migrations_reviewed"


def view(rt: Runtime, deployment_id: str) -> dict[str, Any]:
    """The report of the deployment, the acknowledgements of its commit, its migration run."""
    with rt.db.read() as conn:
        d = store.get_deployment(conn, deployment_id)
        service = service_store.get_service_by_id(conn, d.service_id)
        report = schema_changes.report_for(conn, d.id)
        acks = schema_changes.acknowledgements(conn, d.service_id, d.sha)
        run = schema_changes.run_for(conn, d.id)
    migrate = rt.spec_of(service.config_text).environment(d.environment).migrate
    rules = migrate.rules if migrate else []
    covered = covered_rules(acks)
    return {
        "deployment_id": d.id,
        "service": d.service,
        "environment": d.environment,
        "sha": d.sha,
        "state": d.state.value,
        "maintenance": d.maintenance,
        "report": report.as_json() if report else None,
        "rules": list(rules),
        "unacknowledged": open_rules(report, rules, covered) if report else [],
        "acknowledgements": [
            {"user": a.user, "reason": a.reason, "at": a.at.isoformat(), "rules": list(a.rules)} for a in acks
        ],
        "run": None
        if run is None
        else {
            "environment": run.environment,
            "started_at": run.started_at.isoformat(),
            "seconds": run.seconds,
            "ok": run.ok,
            "maintenance": run.maintenance,
            "backup": run.backup,
        },
    }


def acknowledge(rt: Runtime, deployment_id: str, user: User, reason: str) -> list[str]:
    """Record ``user``'s acknowledgement of the findings in the deployment's report; answers the
    pending deployments it ticked. Refused (audited, nothing changes) for a role that may not."""
    with rt.db.read() as conn:
        d = store.get_deployment(conn, deployment_id)
        report = schema_changes.report_for(conn, d.id)
    decision = may_acknowledge_migrations(user.name, user.roles, d.environment)
    if not decision.allowed:
        raise refuse(rt, user.name, "migrations.acknowledge", d.id, decision.reason)
    text = reason.strip()
    if not text:
        raise InvalidInput("an acknowledgement needs a reason", fix="give --reason TEXT: why the findings are safe")
    if report is None:
        raise Conflict(
            f"deployment {d.id[:8]} has no lint report of its migrations",
            fix="its environment has no migrate (or migrate.lint is false), or it was not linted yet: "
            "see `conveyor migrations show` once it is",
        )
    rules = rules_to_acknowledge(report)
    if not rules:
        raise Conflict(
            f"the lint found nothing in the migrations of deployment {d.id[:8]}",
            fix="there is nothing to acknowledge; tick migrations_reviewed with `conveyor checklist` if it is asked",
        )
    now = rt.clock.now()
    with rt.db.begin() as conn:
        schema_changes.acknowledge(
            conn, service_id=d.service_id, sha=d.sha, user=user.name, reason=text, rules=rules, now=now
        )
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action="migrations.acknowledged",
            subject=d.id,
            details={"service": d.service, "environment": d.environment, "sha": d.sha, "rules": rules, "reason": text},
        )
        waiting = [
            p
            for i in evidence.pending_with_sha(conn, d.sha)
            if (p := store.get_deployment(conn, i)).service_id == d.service_id
        ]
        for p in waiting:
            service = service_store.get_service_by_id(conn, p.service_id)
            checklist = rt.spec_of(service.config_text).environment(p.environment).gates.checklist
            if CHECKLIST_ITEM in checklist and evidence.tick(conn, p.id, CHECKLIST_ITEM, user.name, now):
                audit.append(
                    conn,
                    at=now,
                    actor=user.name,
                    action="checklist.ticked",
                    subject=p.id,
                    details={"item": CHECKLIST_ITEM, "from": "migrations.acknowledged"},
                )
    nudges.nudge([p.id for p in waiting])
    return [p.id for p in waiting]


def tick_if_acknowledged(rt: Runtime, deployment_id: str) -> None:
    """A deployment requested after its commit's findings were acknowledged (say in staging): its
    ``migrations_reviewed`` ticks itself, by the last acknowledger, once every finding of its own
    report is covered."""
    with rt.db.read() as conn:
        d = store.get_deployment(conn, deployment_id)
        service = service_store.get_service_by_id(conn, d.service_id)
        report = schema_changes.report_for(conn, d.id)
        acks = schema_changes.acknowledgements(conn, d.service_id, d.sha)
    env = rt.spec_of(service.config_text).environment(d.environment)
    if report is None or not acks or CHECKLIST_ITEM not in env.gates.checklist:
        return
    found = rules_to_acknowledge(report)
    if not found or set(found) - covered_rules(acks):
        return
    now = rt.clock.now()
    with rt.db.begin() as conn:
        if evidence.tick(conn, d.id, CHECKLIST_ITEM, acks[-1].user, now):
            audit.append(
                conn,
                at=now,
                actor=acks[-1].user,
                action="checklist.ticked",
                subject=d.id,
                details={"item": CHECKLIST_ITEM, "from": "migrations.acknowledged"},
            )
