"""A deployment's migrations: the SQL Conveyor will run and the lint's findings, and a release
manager's acknowledgement of them (docs/database.md)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from conveyor.api.deps import RuntimeDep, UserDep
from conveyor.api.models_migrations import MigrationsView
from conveyor.engine import migration_acks
from conveyor.engine.deployments import resolve_id

router = APIRouter(prefix="/api/v1", tags=["migrations"])


class AcknowledgeBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="why the findings are safe (audited)")


@router.get("/deployments/{deployment_id}/migrations")
def migrations(deployment_id: str, rt: RuntimeDep, _user: UserDep) -> MigrationsView:
    """The lint report of the deployment's migrations, the acknowledgements of its commit, and its
    migration run (duration, maintenance, backup) once it ran."""
    return MigrationsView.model_validate(migration_acks.view(rt, resolve_id(rt, deployment_id)))


@router.post("/deployments/{deployment_id}/migrations/acknowledge", status_code=201)
def acknowledge(deployment_id: str, body: AcknowledgeBody, rt: RuntimeDep, user: UserDep) -> MigrationsView:
    """Acknowledge the findings for the deployment's commit (release managers): the migrations gate
    passes for them, in every environment, and migrations_reviewed ticks itself where asked."""
    found = resolve_id(rt, deployment_id)
    migration_acks.acknowledge(rt, found, user, body.reason)
    return MigrationsView.model_validate(migration_acks.view(rt, found))
