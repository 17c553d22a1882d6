"""Feature flags over HTTP: the admin REST API (/api/v1/flags, user tokens), the ruleset and its
SSE stream for SDKs, and OFREP v1 (/ofrep/v1) for OpenFeature providers (both with SDK keys)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from conveyor.api.deps import RuntimeDep, UserDep
from conveyor.api.models_flags import (
    FlagDeleted,
    FlagDetail,
    FlagState,
    FlagSummary,
    ImportResult,
    NewSdkKey,
    OfrepConfiguration,
    Ruleset,
    Segment,
    SegmentDeleted,
)
from conveyor.api.models_flags import SdkKey as SdkKeyModel
from conveyor.errors import Forbidden
from conveyor.flags import access, ofrep, segments, unleash_import
from conveyor.flags import service as ops
from conveyor.flags.keys import CACHE, SdkKey, is_live, key_from_headers
from conveyor.flags.live import Live, live_of
from conveyor.flags.model import FlagType
from conveyor.flags.ruleset import Scope, Snapshot
from conveyor.flags.stream import events

admin = APIRouter(prefix="/api/v1/flags", tags=["flags"])
ofrep_api = APIRouter(prefix="/ofrep/v1", tags=["ofrep"])


def get_live(request: Request, rt: RuntimeDep) -> Live:
    return live_of(request.app.state, rt)


LiveDep = Annotated[Live, Depends(get_live)]


def sdk_key(request: Request, rt: RuntimeDep) -> SdkKey:
    key = key_from_headers(request.headers.get("x-api-key"), request.headers.get("authorization"))
    with rt.db.read() as conn:
        return CACHE.load(conn, key)


SdkKeyDep = Annotated[SdkKey, Depends(sdk_key)]


def _scope(key: SdkKey, service_name: str | None = None, environment: str | None = None) -> Scope:
    if (service_name and service_name != key.service) or (environment and environment != key.environment):
        raise Forbidden(
            f"this SDK key reads {key.service}/{key.environment}, "
            f"not {service_name or key.service}/{environment or key.environment}",
            fix="use a key of that environment (`conveyor flags key create --env ENV`)",
        )
    return Scope(key.service_id, key.service, key.environment)


# --- admin -----------------------------------------------------------------------------------


class NewFlag(BaseModel):
    key: str = Field(min_length=1, max_length=128)
    service: str | None = Field(None, max_length=64)
    type: FlagType = "boolean"
    default: Any = None
    on_value: Any = None
    variants: list[dict[str, Any]] = Field(default_factory=list, max_length=100)
    description: str | None = Field(None, max_length=2000)


class FlagChanges(BaseModel):
    type: FlagType | None = None
    default: Any = None
    on_value: Any = None
    variants: list[dict[str, Any]] | None = Field(None, max_length=100)
    description: str | None = Field(None, max_length=2000)


class StateChanges(BaseModel):
    enabled: bool | None = Field(None, description="omitted: unchanged")
    strategies: list[dict[str, Any]] | None = Field(None, max_length=100, description="omitted: unchanged")


class Kill(BaseModel):
    reason: str | None = Field(None, max_length=2000)


class Rollout(BaseModel):
    percent: int = Field(ge=0, le=100)


class NewKey(BaseModel):
    environment: str = Field(min_length=1, max_length=32)
    service: str | None = Field(None, max_length=64)
    name: str | None = Field(None, max_length=64)


class NewSegment(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    service: str | None = Field(None, max_length=64)
    description: str | None = Field(None, max_length=2000)
    constraints: list[dict[str, Any]] = Field(default_factory=list, max_length=100)


class SegmentChanges(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=128)
    description: str | None = Field(None, max_length=2000)
    constraints: list[dict[str, Any]] | None = Field(None, max_length=100)


class UnleashImport(BaseModel):
    environment: str = Field(min_length=1, max_length=32)
    service: str | None = Field(None, max_length=64)
    export: dict[str, Any] = Field(description="the JSON of Unleash's GET /api/client/features")
    dry_run: bool = Field(False, description="only say what would change")


Service = Annotated[str | None, Field(max_length=64)]


@admin.get("")
def list_flags(rt: RuntimeDep, _user: UserDep, service: Service = None) -> list[FlagSummary]:
    return [FlagSummary.model_validate(f) for f in ops.list_flags(rt, service)]


@admin.post("", status_code=201)
def create(body: NewFlag, rt: RuntimeDep, user: UserDep, live: LiveDep) -> FlagDetail:
    definition = body.model_dump(exclude={"key", "service"})
    return FlagDetail.model_validate(ops.create_flag(rt, user, live.notify, body.key, body.service, definition))


@admin.get("/sdk-keys")
def list_keys(
    rt: RuntimeDep, _user: UserDep, service: Service = None, environment: str | None = None
) -> list[SdkKeyModel]:
    return [SdkKeyModel.model_validate(k) for k in access.list_keys(rt, service, environment)]


@admin.post("/sdk-keys", status_code=201)
def create_key(body: NewKey, rt: RuntimeDep, user: UserDep) -> NewSdkKey:
    """A new SDK key for one service environment. The key is in this answer only."""
    return NewSdkKey.model_validate(access.create_key(rt, user, body.service, body.environment, body.name))


@admin.delete("/sdk-keys/{key_id}")
def revoke_key(key_id: int, rt: RuntimeDep, user: UserDep) -> SdkKeyModel:
    return SdkKeyModel.model_validate(access.revoke_key(rt, user, key_id))


# --- for SDKs: the ruleset and its stream ----------------------------------------------------


@admin.get(
    "/ruleset",
    tags=["sdk"],
    responses={200: {"model": Ruleset, "description": "the ruleset"}, 304: {"description": "unchanged"}},
)
def ruleset(
    request: Request, key: SdkKeyDep, live: LiveDep, service: Service = None, environment: str | None = None
) -> Response:
    """The environment's ruleset (docs/flags-ruleset.md). ETag is the version; 304 when unchanged."""
    snapshot = live.snapshot(_scope(key, service, environment))
    headers = {"ETag": snapshot.etag, "Cache-Control": "no-cache"}
    if ofrep.matches(request.headers.get("if-none-match"), snapshot.etag):
        return Response(status_code=304, headers=headers)
    return Response(snapshot.text, media_type="application/json", headers=headers)


@admin.get(
    "/stream",
    tags=["sdk"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}},
)
async def stream(
    rt: RuntimeDep, key: SdkKeyDep, live: LiveDep, service: Service = None, environment: str | None = None
) -> StreamingResponse:
    """Server-sent events: ``event: ruleset`` with the whole ruleset now and after every change;
    ``: keepalive`` comments every 15 s. Ends when the key is revoked."""
    scope = _scope(key, service, environment)
    first: Snapshot = await run_in_threadpool(live.snapshot, scope)

    def key_live() -> bool:
        with rt.db.read() as conn:
            return is_live(conn, key.id)

    async def still_allowed() -> bool:
        return bool(await run_in_threadpool(key_live))

    return StreamingResponse(
        events(live.hub, scope, first, still_allowed),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# --- segments and the Unleash import --------------------------------------------------------


@admin.get("/segments")
def list_segments(rt: RuntimeDep, _user: UserDep, service: Service = None) -> list[Segment]:
    return [Segment.model_validate(s) for s in segments.list_segments(rt, service)]


@admin.post("/segments", status_code=201)
def create_segment(body: NewSegment, rt: RuntimeDep, user: UserDep, live: LiveDep) -> Segment:
    """A shared set of constraints; a strategy names it in ``segments`` by id, and matches only
    when every constraint of every segment it names holds (Unleash's segments)."""
    data = body.model_dump(exclude={"service"})
    return Segment.model_validate(segments.create_segment(rt, user, live.notify, body.service, data))


@admin.get("/segments/{name}")
def show_segment(name: str, rt: RuntimeDep, _user: UserDep, service: Service = None) -> Segment:
    return Segment.model_validate(segments.detail(rt, name, service))


@admin.patch("/segments/{name}")
def update_segment(
    name: str, body: SegmentChanges, rt: RuntimeDep, user: UserDep, live: LiveDep, service: Service = None
) -> Segment:
    """Change the name, description or constraints; every flag naming it serves by them at once."""
    changes = body.model_dump(exclude_unset=True)
    return Segment.model_validate(segments.update_segment(rt, user, live.notify, name, service, changes))


@admin.delete("/segments/{name}")
def delete_segment(name: str, rt: RuntimeDep, user: UserDep, live: LiveDep, service: Service = None) -> SegmentDeleted:
    """Delete a segment that no strategy names."""
    return SegmentDeleted.model_validate(segments.delete_segment(rt, user, live.notify, name, service))


@admin.post("/import/unleash")
def import_unleash(body: UnleashImport, rt: RuntimeDep, user: UserDep, live: LiveDep) -> ImportResult:
    """Make an Unleash features export the flags and segments of one service environment (or,
    with ``dry_run``, only say what would change)."""
    result = unleash_import.import_unleash(
        rt, user, live.notify, body.service, body.environment, body.export, body.dry_run
    )
    return ImportResult.model_validate(result)


# --- one flag ----------------------------------------------------------------------------------


@admin.get("/{key}")
def show(key: str, rt: RuntimeDep, _user: UserDep, service: Service = None) -> FlagDetail:
    """The flag, with its state and ruleset version in every environment of its service."""
    return FlagDetail.model_validate(ops.detail(rt, key, service))


@admin.patch("/{key}")
def update(
    key: str, body: FlagChanges, rt: RuntimeDep, user: UserDep, live: LiveDep, service: Service = None
) -> FlagDetail:
    """Change type, default, on_value, variants or description; fields left out stay."""
    return FlagDetail.model_validate(
        ops.update_flag(rt, user, live.notify, key, service, body.model_dump(exclude_unset=True))
    )


@admin.delete("/{key}")
def delete(key: str, rt: RuntimeDep, user: UserDep, live: LiveDep, service: Service = None) -> FlagDeleted:
    """Delete a flag that is off in every environment."""
    return FlagDeleted.model_validate(ops.delete_flag(rt, user, live.notify, key, service))


@admin.put("/{key}/environments/{environment}")
def put_state(
    key: str,
    environment: str,
    body: StateChanges,
    rt: RuntimeDep,
    user: UserDep,
    live: LiveDep,
    service: Service = None,
) -> FlagState:
    """Set the flag's state in the environment: ``enabled`` and/or ``strategies`` (an omitted
    field keeps its value, so new strategies never undo a kill)."""
    ref = (key, service, environment)
    return FlagState.model_validate(ops.set_state(rt, user, live.notify, ref, body.enabled, body.strategies))


@admin.post("/{key}/environments/{environment}/on")
def turn_on(
    key: str, environment: str, rt: RuntimeDep, user: UserDep, live: LiveDep, service: Service = None
) -> FlagState:
    """Serve the flag in the environment: to everyone, unless its strategies narrow it."""
    return FlagState.model_validate(ops.switch(rt, user, live.notify, (key, service, environment), "on"))


@admin.post("/{key}/environments/{environment}/off")
def turn_off(
    key: str, environment: str, rt: RuntimeDep, user: UserDep, live: LiveDep, service: Service = None
) -> FlagState:
    """Serve the flag's default in the environment."""
    return FlagState.model_validate(ops.switch(rt, user, live.notify, (key, service, environment), "off"))


@admin.post("/{key}/environments/{environment}/kill")
def kill(
    key: str,
    environment: str,
    rt: RuntimeDep,
    user: UserDep,
    live: LiveDep,
    body: Kill | None = None,
    service: Service = None,
) -> FlagState:
    """The kill switch: off now, in one call. Managers may use it as well as the deployers."""
    reason = body.reason if body else None
    return FlagState.model_validate(ops.switch(rt, user, live.notify, (key, service, environment), "kill", reason))


@admin.post("/{key}/environments/{environment}/rollout")
def rollout(
    key: str,
    environment: str,
    body: Rollout,
    rt: RuntimeDep,
    user: UserDep,
    live: LiveDep,
    service: Service = None,
) -> FlagState:
    """Set the percentage of the flag's rollout strategy (the first one without constraints; one
    is added after the targeting rules if there is none). Does not turn the flag on."""
    return FlagState.model_validate(ops.rollout(rt, user, live.notify, (key, service, environment), body.percent))


# --- OFREP: the evaluation routes are plain Starlette routes in api/ofrep.py (the hot path) ----


@ofrep_api.get("/configuration")
def ofrep_configuration(_sdk: SdkKeyDep) -> OfrepConfiguration:
    return OfrepConfiguration.model_validate(ofrep.configuration())


ROUTERS = (admin, ofrep_api)
