"""Gather what the gates look at from the store, and evaluate them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from conveyor.domain.calendar import Freeze
from conveyor.gates import registry
from conveyor.gates.base import Evidence, GateResult
from conveyor.runtime import Runtime
from conveyor.store import evidence as store
from conveyor.store import freezes as freeze_store
from conveyor.store.records import ServiceRecord


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
    at: datetime | None = None,
) -> Evidence:
    spec = rt.spec_of(service.config_text)
    hotfix = spec.hotfix is not None and ref.startswith(spec.hotfix.branch_prefix)
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
    )


def evaluate(rt: Runtime, service: ServiceRecord, evidence: Evidence) -> list[GateResult]:
    spec = rt.spec_of(service.config_text)
    return registry.evaluate(spec, spec.environment(evidence.environment), evidence)


def has_gates(rt: Runtime, service: ServiceRecord, environment: str) -> bool:
    """True when the environment has gates beyond who may deploy (so a request may have to wait)."""
    spec = rt.spec_of(service.config_text)
    env = spec.environment(environment)
    return any(g.applies(spec, env) for g in registry.GATES.values() if g.name != "deployers")
