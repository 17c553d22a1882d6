"""Monitoring after a deploy: its window and samples (the evidence), and a person's early end."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from conveyor.api.deployments import deployment_detail
from conveyor.api.deps import RuntimeDep, UserDep
from conveyor.api.models import DeploymentDetail
from conveyor.api.models_monitoring import MonitoringView
from conveyor.engine.deployments import resolve_id
from conveyor.engine.monitoring_people import decide
from conveyor.store import deployments as store
from conveyor.store import monitor_samples as samples

router = APIRouter(prefix="/api/v1", tags=["monitoring"])


class EarlyEnd(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


@router.get("/deployments/{deployment_id}/monitoring")
def monitoring(deployment_id: str, rt: RuntimeDep, _user: UserDep) -> MonitoringView:
    """The monitoring window of a deployment, its samples and any breach, with the numbers."""
    found = resolve_id(rt, deployment_id)
    with rt.db.read() as conn:
        d = store.get_deployment(conn, found)
        mon = samples.get(conn, found)
        stored = samples.samples(conn, found)
    return MonitoringView.model_validate(
        {
            "deployment_id": d.id,
            "state": d.state.value,
            "monitoring": mon.as_json() if mon else None,
            "samples": [s.as_json() for s in stored],
        }
    )


@router.post("/deployments/{deployment_id}/monitoring/accept")
def accept(deployment_id: str, body: EarlyEnd, rt: RuntimeDep, user: UserDep) -> DeploymentDetail:
    """Accept the release now: monitoring ends, the deployment succeeds (release managers, admins)."""
    found = resolve_id(rt, deployment_id)
    decide(rt, found, "accept", user.name, user.roles, body.reason)
    return deployment_detail(rt, found)


@router.post("/deployments/{deployment_id}/monitoring/rollback")
def rollback(deployment_id: str, body: EarlyEnd, rt: RuntimeDep, user: UserDep) -> DeploymentDetail:
    """Roll back now: the previous release serves again, the deployment ends rolled back."""
    found = resolve_id(rt, deployment_id)
    decide(rt, found, "rollback", user.name, user.roles, body.reason)
    return deployment_detail(rt, found)
