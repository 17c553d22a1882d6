"""Gather what the gates look at from the store, and evaluate them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from conveyor.domain.calendar import Freeze
from conveyor.domain.evidence import Evidence, GateResult, MigrationsEvidence
from conveyor.engine.hotfix import is_hotfix
from conveyor.gates import registry
from conveyor.runtime import Runtime
from conveyor.store import evidence as store
from conveyor.store import freezes as freeze_store
from conveyor.store import schema_changes
from conveyor.store import services as service_store
from conveyor.store.records import DeploymentRecord, ServiceRecord
from conveyor.store.tables import users


def gather(
    conn: Connection,
    rt: Runtime,
    service: ServiceRecord,
    *,
    environment: str,
    sha: str,
    ref: str,
    requester: str,
    requester_roles: tuple[str, ...],
    deployment_id: str | None = None,
    emergency: bool = False,
    when_open: bool = False,
    maintenance: bool = False,
    at: datetime | None = None,
) -> Evidence:
    hotfix = is_hotfix(conn, service, sha, ref)  # by ancestry, never by the branch name (docs/hotfix.md)
    return Evidence(
        environment=environment,
        sha=sha,
        ref=ref,
        requester=requester,
        requester_roles=requester_roles,
        now=at or rt.clock.now(),
        deployment_id=deployment_id,
        hotfix=hotfix,
        reviews=store.reviews_for(conn, sha, service),
        checks=store.checks_for(conn, sha, service),
        runs=store.runs_for(conn, service.id, sha),
        verifications=store.verifications_for(conn, service.id, sha),
        approvals=store.approvals_for(conn, deployment_id) if deployment_id else (),
        ticks=store.ticks_for(conn, deployment_id) if deployment_id else {},
        freezes=tuple(
            Freeze(f.starts_at, f.ends_at, f.reason) for f in freeze_store.active_freezes(conn, service.id, environment)
        ),
        emergency=emergency,
        when_open=when_open,
        migrations=migrations_evidence(conn, rt, service, environment, sha, deployment_id, maintenance),
    )


def migrations_evidence(
    conn: Connection,
    rt: Runtime,
    service: ServiceRecord,
    environment: str,
    sha: str,
    deployment_id: str | None,
    maintenance: bool,
) -> MigrationsEvidence | None:
    """The ``migrations`` gate's evidence, where the environment lints its migrations. A deployment
    has its own report; ``why`` (no deployment) takes the commit's newest, in this environment or
    else in any (docs/gates.md)."""
    env = rt.spec_of(service.config_text).environment(environment)
    if env.migrate is None or not env.migrate.lint:
        return None
    if deployment_id is not None:
        report = schema_changes.report_for(conn, deployment_id)
    else:
        report = schema_changes.latest_report(conn, service.id, sha, environment) or schema_changes.latest_report(
            conn, service.id, sha
        )
    verified = env.gates.staging_verified
    run = schema_changes.latest_run(conn, service.id, sha, verified.environment) if verified else None
    return MigrationsEvidence(
        report=report,
        acknowledgements=schema_changes.acknowledgements(conn, service.id, sha),
        maintenance=maintenance,
        staging_seconds=run.seconds if run else None,
    )


def evaluate(rt: Runtime, service: ServiceRecord, evidence: Evidence) -> list[GateResult]:
    spec = rt.spec_of(service.config_text)
    return registry.evaluate(spec, spec.environment(evidence.environment), evidence)


def has_gates(rt: Runtime, service: ServiceRecord, environment: str) -> bool:
    """True when the environment has gates beyond who may deploy (so a request may have to wait)."""
    spec = rt.spec_of(service.config_text)
    env = spec.environment(environment)
    return any(g.applies(spec, env) for g in registry.GATES.values() if g.name != "deployers")


def requester_roles(conn: Connection, d: DeploymentRecord) -> tuple[str, ...]:
    row = conn.execute(select(users.c.roles).where(users.c.name == d.actor)).first()
    return tuple(row.roles) if row else ()


def evaluate_deployment(rt: Runtime, d: DeploymentRecord, system: bool = False) -> list[Any]:
    """Evaluate every gate for a recorded deployment; ``system`` requests skip the deployers gate."""
    with rt.db.read() as conn:
        service = service_store.get_service_by_id(conn, d.service_id)
        ev = gather(
            conn,
            rt,
            service,
            environment=d.environment,
            sha=d.sha,
            ref=d.ref,
            requester=d.actor,
            requester_roles=requester_roles(conn, d),
            deployment_id=d.id,
            emergency=d.emergency,
            when_open=d.when_open,
            maintenance=d.maintenance,
        )
    results = evaluate(rt, service, ev)
    if system or d.trigger != "manual":
        results = [r for r in results if r.gate != "deployers"]
    return results
