"""Gates over HTTP: why (evaluate without deploying), approvals, checklist ticks, sign-offs,
CI checks and reviews reported by other forges."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi import APIRouter
from pydantic import BaseModel, Field

from conveyor.api.deployments import deployment_detail
from conveyor.api.deps import RuntimeDep, UserDep
from conveyor.api.models import CheckReported, DeploymentDetail, ReviewReported, Verification, Why
from conveyor.audit.refusals import refuse
from conveyor.auth.users import get_user
from conveyor.engine import evidence_intake as intake
from conveyor.engine.deployments import resolve_id
from conveyor.engine.why import why as why_answer
from conveyor.errors import InvalidInput
from conveyor.store import services as service_store
from conveyor.vcs.git import GitRepo

router = APIRouter(prefix="/api/v1", tags=["gates"])


class ApprovalBody(BaseModel):
    comment: str | None = Field(None, max_length=2000)


class TickBody(BaseModel):
    item: str = Field(min_length=1, max_length=64)


class VerifyBody(BaseModel):
    environment: str = Field(min_length=1, max_length=32)
    ref: str = Field(min_length=1, max_length=255)
    service: str | None = Field(None, max_length=64)


class CheckBody(BaseModel):
    sha: str = Field(min_length=7, max_length=64)
    name: str = Field(min_length=1, max_length=128)
    state: str = Field(min_length=1, max_length=16)
    url: str | None = Field(None, max_length=2000)


class ReviewBody(BaseModel):
    sha: str = Field(min_length=7, max_length=64)
    reviewer: str = Field(min_length=1, max_length=64)
    state: str = Field("approved", max_length=32)
    service: str | None = Field(None, max_length=64, description="whose repository the commit is in")


@router.get("/why")
def why(
    rt: RuntimeDep,
    user: UserDep,
    environment: str,
    ref: str,
    service: str | None = None,
    as_user: str | None = None,
    at: datetime | None = None,
) -> Why:
    """Every gate for deploying REF to ENVIRONMENT now (or ``at``, ISO-8601 with an offset), as USER
    (default: the caller), without deploying."""
    if at is not None and at.utcoffset() is None:
        raise InvalidInput(f"--at {at.isoformat()} has no time zone", fix="add an offset, e.g. 2026-12-03T14:30-08:00")
    if as_user and as_user != user.name and not user.has_role("admin"):
        raise refuse(rt, user.name, "why as another user", as_user, f"{user.name} may not evaluate gates as {as_user}")
    with rt.db.read() as conn:
        subject = get_user(conn, as_user) if as_user else user
    answer = why_answer(rt, subject, service, environment, ref, at)
    return Why.model_validate(
        {
            "service": answer.service.name,
            "environment": environment,
            "ref": ref,
            "sha": answer.sha,
            "as": subject.name,
            "at": answer.at.isoformat(),
            "deployable": answer.deployable,
            "gates": [r.as_json() for r in answer.gates],
        }
    )


@router.post("/deployments/{deployment_id}/approvals", status_code=201)
def approve(deployment_id: str, body: ApprovalBody, rt: RuntimeDep, user: UserDep) -> DeploymentDetail:
    d = intake.approve(rt, resolve_id(rt, deployment_id), user, body.comment)
    return deployment_detail(rt, d.id)


@router.post("/deployments/{deployment_id}/checklist", status_code=201)
def tick(deployment_id: str, body: TickBody, rt: RuntimeDep, user: UserDep) -> DeploymentDetail:
    d = intake.tick(rt, resolve_id(rt, deployment_id), body.item, user)
    return deployment_detail(rt, d.id)


@router.post("/verifications", status_code=201)
def verify(body: VerifyBody, rt: RuntimeDep, user: UserDep) -> Verification:
    with rt.db.begin() as conn:
        svc = service_store.pick_service(conn, body.service)
    sha = GitRepo(Path(svc.repo_path)).resolve(body.ref)
    return Verification.model_validate(intake.verify(rt, user, body.environment, sha, svc.name))


@router.post("/checks", status_code=201)
def report_check(body: CheckBody, rt: RuntimeDep, user: UserDep) -> CheckReported:
    """A CI result. Needs a reporter role (CONVEYOR_EVIDENCE_REPORTER_ROLES, default reporter)."""
    intake.require_reporter(rt, user, "check", body.sha)
    intake.report_check(rt, user.name, body.sha, body.name, body.state, body.url)
    return CheckReported(sha=body.sha.lower(), name=body.name, state=body.state)


@router.post("/reviews", status_code=201)
def report_review(body: ReviewBody, rt: RuntimeDep, user: UserDep) -> ReviewReported:
    """A review from a forge without webhooks. Needs a reporter role; the commit's author comes from
    git (a reviewer who is the author's git name or e-mail is the author), never from the caller."""
    intake.require_reporter(rt, user, "review", body.sha)
    with rt.db.read() as conn:
        svc = service_store.pick_service(conn, body.service)
    sha, author = intake.commit_author(GitRepo(Path(svc.repo_path)), body.sha, body.reviewer)
    intake.report_review(rt, user.name, sha=sha, reviewer=body.reviewer, author=author, state=body.state, source="api")
    return ReviewReported(sha=sha, reviewer=body.reviewer, author=author, state=body.state)
