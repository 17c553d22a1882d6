"""Hotfix flows over HTTP (docs/hotfix.md): start a hotfix branch, list merge-backs, override the
missing-commits refusal, and revert an environment's latest change on its branch."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from conveyor.api.deps import RuntimeDep, UserDep
from conveyor.api.models_hotfix import HotfixStarted, MergeBackItem, MissingOverride, RevertCreated
from conveyor.engine import hotfix, regression
from conveyor.engine import revert as reverting
from conveyor.store import hotfix_log

router = APIRouter(prefix="/api/v1", tags=["hotfix"])


class NewHotfix(BaseModel):
    environment: str = Field(min_length=1, max_length=32, description="where the release to fix serves")
    name: str = Field(min_length=1, max_length=100, description="the branch is hotfix/NAME")
    service: str | None = Field(None, max_length=64)


class NewOverride(BaseModel):
    environment: str = Field(min_length=1, max_length=32)
    ref: str = Field(min_length=1, max_length=255)
    reason: str = Field(min_length=1, max_length=2000)
    service: str | None = Field(None, max_length=64)


class NewRevert(BaseModel):
    environment: str = Field(min_length=1, max_length=32)
    to: str | None = Field(None, max_length=128, description="the release to go back to; default the previous")
    service: str | None = Field(None, max_length=64)


@router.post("/hotfixes", status_code=201, response_model=HotfixStarted)
def start(body: NewHotfix, rt: RuntimeDep, user: UserDep) -> dict[str, Any]:
    """Create hotfix/NAME from the release serving in ENVIRONMENT, pushed where there is an origin."""
    return hotfix.start(rt, user, body.service, body.environment, body.name).as_json()


@router.get("/merge-backs", response_model=list[MergeBackItem])
def merge_backs(rt: RuntimeDep, _user: UserDep, service: str | None = None, all: bool = False) -> list[dict[str, Any]]:
    """Hotfix merge-backs: the pending ones (state due), or with ``all`` every one's latest state."""
    with rt.db.read() as conn:
        items = hotfix_log.merge_backs(conn, service) if all else hotfix_log.pending(conn, service)
    return [m.as_json() for m in items]


@router.post("/missing-commits/overrides", status_code=201, response_model=MissingOverride)
def allow_missing(body: NewOverride, rt: RuntimeDep, user: UserDep) -> dict[str, Any]:
    """A release manager lets REF deploy to ENVIRONMENT although it lacks commits serving there."""
    return regression.allow_missing(rt, user, body.service, body.environment, body.ref, body.reason)


@router.post("/reverts", status_code=201, response_model=RevertCreated)
def revert(body: NewRevert, rt: RuntimeDep, user: UserDep) -> dict[str, Any]:
    """Revert ENVIRONMENT's latest change (or back to ``to``) on its branch; the normal flow deploys it."""
    return reverting.revert(rt, user, body.service, body.environment, body.to).as_json()
