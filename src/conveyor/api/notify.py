"""Notifications: a sample through an environment's notifiers (`conveyor notify test ENV`)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from conveyor.api.deps import RuntimeDep, UserDep
from conveyor.api.models import SampleResult, SampleSent
from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth.policy import may_deploy
from conveyor.notify.host import send_sample
from conveyor.store import services as service_store

router = APIRouter(prefix="/api/v1", tags=["notifications"])


class SampleRequest(BaseModel):
    service: str | None = Field(None, max_length=64)


@router.post("/environments/{environment}/notify/test")
async def notify_test(environment: str, body: SampleRequest, rt: RuntimeDep, user: UserDep) -> SampleSent:
    """Send a sample message through every notifier of the environment, now, and say what each
    did. Whoever may deploy to the environment may send one; it is audited, not recorded as a
    deployment's message."""
    with rt.db.read() as conn:
        service = service_store.pick_service(conn, body.service)
    env = rt.spec_of(service.config_text).environment(environment)
    decision = may_deploy(user.name, user.roles, environment, env)
    if not decision.allowed:
        reason = decision.reason.replace("deploy to", "send notifications for")
        raise refuse(rt, user.name, "notify.test", f"{service.name}/{environment}", reason)
    results = await run_in_threadpool(send_sample, rt, service, environment, user.name)
    now = rt.clock.now()
    with rt.db.begin() as conn:
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action="notify.test",
            subject=f"{service.name}/{environment}",
            details={"results": [{k: r[k] for k in ("notifier", "ok", "note")} for r in results]},
        )
    return SampleSent(
        service=service.name,
        environment=environment,
        results=[SampleResult.model_validate(r) for r in results],
    )
