"""Asking for a migration alone (`conveyor migrate ENV`, docs/database.md): the process document's
"run migrations manually". It is a deployment of kind ``migrate`` with the steps prepare and
migrate, through the same gates and the same audit as a deploy; it never changes the release
serving there, nor tags."""

from __future__ import annotations

import uuid

from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth.policy import may_deploy
from conveyor.domain.deployment import MIGRATE_STEPS, DeploymentKind, DeploymentState
from conveyor.engine import gating, pipeline
from conveyor.engine.deployments import check_maintenance, service_repo
from conveyor.engine.evidence import has_gates
from conveyor.errors import Conflict, InvalidInput
from conveyor.runtime import Runtime
from conveyor.store import deployments as store
from conveyor.store import services as service_store
from conveyor.store.records import DeploymentRecord


def request_migration(
    rt: Runtime,
    *,
    environment: str,
    actor: str,
    roles: tuple[str, ...],
    service: str | None = None,
    ref: str | None = None,
    maintenance: bool = False,
) -> DeploymentRecord:
    """Run ``ref``'s migration in ``environment`` (default: the release serving there). Who may
    deploy there may ask for it."""
    with rt.db.begin() as conn:
        svc = service_store.pick_service(conn, service)
    env = rt.spec_of(svc.config_text).environment(environment)
    decision = may_deploy(actor, roles, environment, env)
    if not decision.allowed:
        raise refuse(rt, actor, "migrate", f"{svc.name}/{environment}", decision.reason)
    if env.migrate is None:
        raise InvalidInput(
            f"{environment} has no migrate command, so there is no migration to run",
            fix=f"add `migrate:` to environments.{environment} in conveyor.yml",
        )
    if maintenance:
        check_maintenance(environment, env)
    with rt.db.read() as conn:
        current = store.current_release(conn, svc.id, environment)
    if ref is None:
        if current is None:
            raise Conflict(
                f"nothing serves in {environment} yet, so there is no release whose migration to run",
                fix=f"name one: conveyor migrate {environment} --ref REF",
            )
        ref, sha = current.version, current.sha
    else:
        sha = service_repo(rt, svc, fetch=True).resolve(ref)
    serving = current is not None and current.sha == sha
    gated = has_gates(rt, svc, environment)
    deployment_id = str(uuid.uuid4())
    now = rt.clock.now()
    with rt.db.begin() as conn:
        store.insert_deployment(
            conn,
            id=deployment_id,
            service_id=svc.id,
            environment=environment,
            kind=DeploymentKind.MIGRATE,
            ref=ref,
            sha=sha,
            state=DeploymentState.PENDING if gated else DeploymentState.QUEUED,
            actor=actor,
            trigger="manual",
            now=now,
            plan=MIGRATE_STEPS,
            release_id=current.id if serving and current else None,
            notes=f"the migration of {ref} alone; {current.version if current else 'nothing'} keeps serving",
            maintenance=maintenance,
        )
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="migration.requested",
            subject=deployment_id,
            details={
                "service": svc.name,
                "environment": environment,
                "ref": ref,
                "sha": sha,
                "serving": current.version if current else None,
                "maintenance": maintenance,
            },
        )
    with rt.db.begin() as conn:
        record = store.get_deployment(conn, deployment_id)
    if gated:
        gating.start_gate_workflow(record)
    else:
        pipeline.enqueue(record)
    return record
