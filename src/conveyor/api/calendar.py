"""The deploy calendar over HTTP: one-off freezes, and the open/closed spans of the coming days."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from conveyor.api.deps import RuntimeDep, UserDep
from conveyor.api.models import Calendar, Freeze, ServiceFreeze, Span
from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth.policy import may_deploy
from conveyor.domain.calendar import Freeze as Closure
from conveyor.domain.calendar import build_schedule, spans
from conveyor.domain.horizon import within_calendar
from conveyor.engine import nudges
from conveyor.errors import InvalidInput
from conveyor.spec import EnvironmentSpec
from conveyor.store import freezes as store
from conveyor.store import services as service_store
from conveyor.store.records import ServiceRecord

router = APIRouter(prefix="/api/v1", tags=["calendar"])


class NewFreeze(BaseModel):
    environment: str = Field(min_length=1, max_length=32)
    service: str | None = Field(None, max_length=64)
    starts_at: datetime | None = Field(None, alias="from", description="default: now")
    ends_at: datetime | None = Field(None, alias="until", description="default: until lifted")
    reason: str = Field(min_length=1, max_length=2000)


def _env(rt: RuntimeDep, service: str | None, environment: str) -> tuple[ServiceRecord, EnvironmentSpec]:
    with rt.db.read() as conn:
        svc = service_store.pick_service(conn, service)
    return svc, rt.spec_of(svc.config_text).environment(environment)


def _aware(value: datetime | None, what: str) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        raise InvalidInput(f"{what} {value.isoformat()} has no time zone", fix="add an offset, e.g. -08:00 or Z")
    return value if value is None else within_calendar(value, what)


@router.post("/freezes", status_code=201)
def add_freeze(body: NewFreeze, rt: RuntimeDep, user: UserDep) -> ServiceFreeze:
    """Freeze an environment: no deploys from ``from`` until ``until`` (or until lifted)."""
    svc, env = _env(rt, body.service, body.environment)
    if not (user.has_role("manager") or may_deploy(user.name, user.roles, body.environment, env).allowed):
        raise refuse(
            rt, user.name, "freeze", f"{svc.name}/{body.environment}", f"{user.name} may not freeze {body.environment}"
        )
    now = rt.clock.now()
    start = _aware(body.starts_at, "--from") or now
    end = _aware(body.ends_at, "--until")
    Closure(start, end, body.reason)  # validates the order of the two
    with rt.db.begin() as conn:
        record = store.add_freeze(conn, svc.id, body.environment, start, end, body.reason, user.name, now)
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action="freeze.added",
            subject=f"{svc.name}/{body.environment}",
            details=record.as_json(),
        )
    return ServiceFreeze.model_validate({"service": svc.name, **record.as_json()})


@router.get("/freezes")
def list_freezes(rt: RuntimeDep, _user: UserDep, environment: str, service: str | None = None) -> list[Freeze]:
    svc, _env_spec = _env(rt, service, environment)
    with rt.db.read() as conn:
        return [Freeze.model_validate(f.as_json()) for f in store.active_freezes(conn, svc.id, environment)]


@router.delete("/freezes/{freeze_id}")
def lift_freeze(freeze_id: Annotated[int, Path(ge=1, le=2**63 - 1)], rt: RuntimeDep, user: UserDep) -> Freeze:
    if not (user.has_role("manager") or user.has_role("release_manager")):
        raise refuse(rt, user.name, "lift freeze", str(freeze_id), f"{user.name} may not lift freezes")
    now = rt.clock.now()
    with rt.db.begin() as conn:
        record = store.lift_freeze(conn, freeze_id, user.name, now)
        audit.append(
            conn, at=now, actor=user.name, action="freeze.lifted", subject=str(freeze_id), details=record.as_json()
        )
    nudges.nudge_all_pending(rt)
    return Freeze.model_validate(record.as_json())


@router.get("/calendar", response_model_exclude_unset=True)
def calendar(
    rt: RuntimeDep,
    _user: UserDep,
    environment: str,
    service: str | None = None,
    days: int = Query(7, ge=1, le=60),
    start: datetime | None = None,
) -> Calendar:
    """Open windows and closures of the coming days, with their reasons."""
    svc, env = _env(rt, service, environment)
    if env.gates.schedule is None:
        return Calendar(service=svc.name, environment=environment, schedule=None, spans=[])
    with rt.db.read() as conn:
        frozen = [Closure(f.starts_at, f.ends_at, f.reason) for f in store.active_freezes(conn, svc.id, environment)]
    schedule = build_schedule(env.gates.schedule, frozen)
    begin = _aware(start, "start") or rt.clock.now()
    begin = begin.replace(second=0, microsecond=0)
    out = spans(schedule, begin, days)
    return Calendar(
        service=svc.name,
        environment=environment,
        timezone=str(schedule.timezone),
        until=(begin + timedelta(days=days)).isoformat(),
        spans=[
            Span(
                start=s.start.astimezone(schedule.timezone).isoformat(),
                end=s.end.astimezone(schedule.timezone).isoformat(),
                open=s.open,
                reason=s.reason,
            )
            for s in out
        ],
    )
