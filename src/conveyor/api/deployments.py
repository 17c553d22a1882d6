"""Deployments: request, roll back, cancel, list (history), show, and logs."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from conveyor.api.deps import RuntimeDep, UserDep
from conveyor.api.models import Deployment, DeploymentDetail, DeploymentLogs
from conveyor.domain.deployment import DeploymentState
from conveyor.engine.deployments import DeployRequest, cancel, request_deployment, resolve_id
from conveyor.engine.migrate_request import request_migration
from conveyor.engine.process import read_tail
from conveyor.engine.rollbacks import request_rollback
from conveyor.store import deployments as store
from conveyor.store import notifications
from conveyor.store import services as service_store
from conveyor.store.notifications import delivery_json

router = APIRouter(prefix="/api/v1", tags=["deployments"])


class NewDeployment(BaseModel):
    environment: str = Field(min_length=1, max_length=32)
    ref: str = Field(min_length=1, max_length=255)
    service: str | None = Field(None, max_length=64)
    notes: str | None = Field(None, max_length=4000)
    ticket: str | None = Field(None, max_length=64)
    emergency: bool = False
    reason: str | None = Field(None, max_length=2000)
    when_open: bool = False
    maintenance: bool = Field(False, description="maintenance mode on during the migrate step (local targets)")


class NewRollback(BaseModel):
    environment: str = Field(min_length=1, max_length=32)
    service: str | None = Field(None, max_length=64)
    to: str | None = Field(None, max_length=128, description="version to go back to; default the previous")
    with_database: bool = Field(
        False, description="take the database back too: maintenance on, migrate.down or database.restore, the code"
    )
    override_schema: bool = Field(
        False, description="roll the code back over a destructive migration anyway (release managers, with reason)"
    )
    reason: str | None = Field(None, max_length=2000, description="why: required with override_schema")


class NewMigration(BaseModel):
    service: str | None = Field(None, max_length=64)
    ref: str | None = Field(None, max_length=255, description="whose migration; default the release serving there")
    maintenance: bool = Field(False, description="maintenance mode on during the migrate step (local targets)")


def deployment_detail(rt: RuntimeDep, deployment_id: str) -> DeploymentDetail:
    """A deployment with its step journal, as every deployment endpoint answers."""
    with rt.db.read() as conn:
        d = store.get_deployment(conn, deployment_id)
        steps = store.get_steps(conn, deployment_id)
    return DeploymentDetail.model_validate({**d.as_json(), "steps": [s.as_json() for s in steps]})


@router.post("/deployments", status_code=201)
def deploy(body: NewDeployment, rt: RuntimeDep, user: UserDep) -> DeploymentDetail:
    d = request_deployment(
        rt,
        DeployRequest(
            environment=body.environment,
            ref=body.ref,
            actor=user.name,
            roles=user.roles,
            emergency=body.emergency,
            reason=body.reason,
            when_open=body.when_open,
            maintenance=body.maintenance,
            service=body.service,
            notes=body.notes,
            ticket=body.ticket,
        ),
    )
    return deployment_detail(rt, d.id)


@router.post("/rollbacks", status_code=201)
def rollback(body: NewRollback, rt: RuntimeDep, user: UserDep) -> DeploymentDetail:
    d = request_rollback(
        rt,
        environment=body.environment,
        actor=user.name,
        roles=user.roles,
        service=body.service,
        to=body.to,
        with_database=body.with_database,
        override_schema=body.override_schema,
        reason=body.reason,
    )
    return deployment_detail(rt, d.id)


@router.post("/environments/{environment}/migrate", status_code=201)
def migrate(environment: str, body: NewMigration, rt: RuntimeDep, user: UserDep) -> DeploymentDetail:
    """Run a release's migration alone (default: the serving release's); the serving release stays."""
    d = request_migration(
        rt,
        environment=environment,
        actor=user.name,
        roles=user.roles,
        service=body.service,
        ref=body.ref,
        maintenance=body.maintenance,
    )
    return deployment_detail(rt, d.id)


@router.get("/deployments")
def history(
    rt: RuntimeDep,
    _user: UserDep,
    service: str | None = None,
    environment: str | None = None,
    state: DeploymentState | None = None,
    limit: int = Query(50, ge=1, le=1000),
) -> list[Deployment]:
    with rt.db.read() as conn:
        service_id = service_store.get_service(conn, service).id if service else None
        rows = store.list_deployments(
            conn,
            service_id=service_id,
            environment=environment,
            states=[state] if state else None,
            limit=limit,
        )
    return [Deployment.model_validate(d.as_json()) for d in rows]


@router.get("/deployments/{deployment_id}")
def show(deployment_id: str, rt: RuntimeDep, _user: UserDep) -> DeploymentDetail:
    return deployment_detail(rt, resolve_id(rt, deployment_id))


@router.post("/deployments/{deployment_id}/cancel")
def cancel_deployment(deployment_id: str, rt: RuntimeDep, user: UserDep) -> DeploymentDetail:
    cancel(rt, resolve_id(rt, deployment_id), user.name, user.roles)
    return deployment_detail(rt, resolve_id(rt, deployment_id))


@router.get("/deployments/{deployment_id}/logs")
def logs(deployment_id: str, rt: RuntimeDep, _user: UserDep) -> DeploymentLogs:
    """The step journal with each step's output; a running step's output is read live."""
    found = resolve_id(rt, deployment_id)
    with rt.db.read() as conn:
        d = store.get_deployment(conn, found)
        steps = store.get_steps(conn, found)
        deliveries = [delivery_json(n) for n in notifications.for_deployment(conn, found)]
    runs, tail = rt.settings.runs_dir / d.id, rt.settings.output_tail_bytes
    journal = [
        {**step.as_json(), "output": read_tail(runs / step.name / "output.log", tail) or step.output_tail or ""}
        for step in steps
    ]
    return DeploymentLogs.model_validate({**d.as_json(), "steps": journal, "notifications": deliveries})
