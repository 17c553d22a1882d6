"""Services: add (or refresh) one, list them, and each environment's status."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from conveyor.api.deps import RuntimeDep, UserDep
from conveyor.api.models import (
    Deployment,
    EnvironmentStatus,
    MaintenanceState,
    Registration,
    ServiceSummary,
    ServingRelease,
)
from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth.policy import may_deploy
from conveyor.engine.registration import register
from conveyor.engine.triggers import check_service
from conveyor.errors import InvalidInput
from conveyor.spec import LocalTarget as LocalTargetSpec
from conveyor.store import deployments as store
from conveyor.store import services as service_store
from conveyor.targets.local import set_maintenance

router = APIRouter(prefix="/api/v1", tags=["services"])


class AddService(BaseModel):
    source: str = Field(min_length=1, max_length=4096, description="clone URL, or absolute path of a git checkout")
    github_repository: str | None = Field(
        None,
        max_length=255,
        description="owner/name its GitHub evidence must come from (default: a github.com source's)",
    )
    dry_run: bool = Field(False, description="only say what registering would change: the diff and its confirm hash")
    confirm_diff: str | None = Field(
        None, max_length=64, description="the confirm hash of the diff shown by a dry run; needed to apply a change"
    )


@router.post("/services", status_code=201)
def add(body: AddService, rt: RuntimeDep, user: UserDep) -> Registration:
    """Add a service, or re-register one. Needs a role in CONVEYOR_SERVICE_ADMIN_ROLES (default admin).
    A re-registration that changes anything needs an admin and the ``confirm_diff`` of its dry run."""
    plan, service = register(
        rt,
        user,
        body.source,
        github_repository=body.github_repository,
        confirm=body.confirm_diff,
        dry_run=body.dry_run,
    )
    started = check_service(rt, service) if service is not None else []  # follow its branches: deploy their heads
    return Registration(
        service=plan.name,
        created=plan.created,
        dry_run=body.dry_run,
        changes=list(plan.changes),
        diff=plan.diff,
        confirm=plan.confirm,
        github_repository=plan.github_repository,
        environments=list(rt.spec_of(plan.text).environments),
        deployments=[Deployment.model_validate(d.as_json()) for d in started],
    )


@router.get("/services")
def list_all(rt: RuntimeDep, _user: UserDep) -> list[ServiceSummary]:
    with rt.db.read() as conn:
        services = service_store.list_services(conn)
    return [
        ServiceSummary(service=s.name, source=s.source, environments=list(rt.spec_of(s.config_text).environments))
        for s in services
    ]


class Maintenance(BaseModel):
    on: bool
    service: str | None = Field(None, max_length=64)


@router.post("/environments/{environment}/maintenance")
def maintenance(environment: str, body: Maintenance, rt: RuntimeDep, user: UserDep) -> MaintenanceState:
    """Answer every request of the environment with a 503 maintenance page (local targets).
    Allowed to the environment's deployers, as deploying there is; a refusal is audited and changes nothing."""
    with rt.db.begin() as conn:
        service = service_store.pick_service(conn, body.service)
    env = rt.spec_of(service.config_text).environment(environment)
    decision = may_deploy(user.name, user.roles, environment, env)
    if not decision.allowed:
        raise refuse(rt, user.name, "maintenance", f"{service.name}/{environment}", decision.reason)
    target = env.target
    if not isinstance(target, LocalTargetSpec):
        raise InvalidInput(
            f"{environment} uses a {target.kind!r} target; maintenance mode needs the local agent's router",
            fix="use `target: {kind: local, ...}`, or put up a maintenance page with your own scripts",
        )
    state = set_maintenance(rt.settings.home, service.name, environment, target, body.on)
    now = rt.clock.now()
    with rt.db.begin() as conn:
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action="environment.maintenance",
            subject=f"{service.name}/{environment}",
            details={"on": body.on},
        )
    return MaintenanceState(service=service.name, environment=environment, maintenance=state.maintenance)


@router.get("/status")
def status(
    rt: RuntimeDep, _user: UserDep, service: str | None = None, environment: str | None = None
) -> list[EnvironmentStatus]:
    """Per service and environment: the release serving, and the latest deployment."""
    out: list[EnvironmentStatus] = []
    with rt.db.read() as conn:
        services = [service_store.get_service(conn, service)] if service else service_store.list_services(conn)
        for s in services:
            spec = rt.spec_of(s.config_text)
            names = [environment] if environment else list(spec.environments)
            for env in names:
                spec.environment(env)
                current = store.current_release(conn, s.id, env)
                latest = store.list_deployments(conn, service_id=s.id, environment=env, limit=1)
                serving = (
                    {**current.as_json(), "version": store.serving_version(conn, s.id, current)} if current else None
                )
                out.append(
                    EnvironmentStatus(
                        service=s.name,
                        environment=env,
                        current=ServingRelease.model_validate(serving) if serving else None,
                        latest=Deployment.model_validate(latest[0].as_json()) if latest else None,
                    )
                )
    return out
