"""Queries for the evidence gates look at: reviews, CI checks, approvals, checklist ticks,
sign-offs, and the same commit's deployments in other environments."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.domain.clock import as_utc
from conveyor.domain.deployment import DeploymentState
from conveyor.errors import Conflict
from conveyor.gates.base import Approval, Check, EnvironmentRun, Review, Tick, Verification
from conveyor.store.tables import (
    approvals,
    checklist_ticks,
    checks,
    deployments,
    pull_requests,
    reviews,
    steps,
    verifications,
)


def record_pull_request(
    conn: Connection, repository: str, number: int, head_sha: str, merge_sha: str | None, author: str, now: datetime
) -> None:
    values = {"head_sha": head_sha, "merge_commit_sha": merge_sha, "author": author, "updated_at": now}
    where = and_(pull_requests.c.repository == repository, pull_requests.c.number == number)
    if conn.execute(update(pull_requests).where(where).values(**values)).rowcount == 0:
        conn.execute(pull_requests.insert().values(repository=repository, number=number, **values))


def record_review(
    conn: Connection,
    *,
    sha: str,
    reviewer: str,
    author: str,
    state: str,
    source: str,
    at: datetime,
    repository: str | None = None,
    pr_number: int | None = None,
) -> None:
    conn.execute(
        reviews.insert().values(
            sha=sha,
            reviewer=reviewer,
            author=author,
            state=state,
            source=source,
            at=at,
            repository=repository,
            pr_number=pr_number,
        )
    )


def record_check(conn: Connection, sha: str, name: str, state: str, url: str | None, by: str, at: datetime) -> None:
    conn.execute(checks.insert().values(sha=sha, name=name, state=state, url=url, reported_by=by, at=at))


def add_approval(
    conn: Connection, deployment_id: str, sha: str, user: str, roles: list[str], comment: str | None, at: datetime
) -> None:
    try:
        with conn.begin_nested():
            conn.execute(
                approvals.insert().values(
                    deployment_id=deployment_id, sha=sha, user=user, roles=roles, comment=comment, at=at
                )
            )
    except IntegrityError as exc:
        raise Conflict(f"{user} already approved deployment {deployment_id[:8]}") from exc


def tick(conn: Connection, deployment_id: str, item: str, user: str, at: datetime) -> bool:
    """Tick an item; False when it was already ticked (the first tick is the one kept)."""
    try:
        with conn.begin_nested():
            conn.execute(checklist_ticks.insert().values(deployment_id=deployment_id, item=item, user=user, at=at))
        return True
    except IntegrityError:
        return False


def add_verification(conn: Connection, service_id: int, sha: str, environment: str, user: str, at: datetime) -> None:
    conn.execute(
        verifications.insert().values(service_id=service_id, sha=sha, environment=environment, user=user, at=at)
    )


def reviews_for(conn: Connection, sha: str) -> tuple[Review, ...]:
    """Reviews of the commit itself, or of the head of a pull request that was merged as it."""
    heads = select(pull_requests.c.head_sha).where(pull_requests.c.merge_commit_sha == sha)
    rows = conn.execute(
        select(reviews).where(or_(reviews.c.sha == sha, reviews.c.sha.in_(heads))).order_by(reviews.c.id)
    )
    return tuple(Review(r.reviewer, r.author, r.state, as_utc(r.at)) for r in rows)


def checks_for(conn: Connection, sha: str) -> dict[str, Check]:
    latest = select(func.max(checks.c.id)).where(checks.c.sha == sha).group_by(checks.c.name)
    rows = conn.execute(select(checks).where(checks.c.id.in_(latest)))
    return {r.name: Check(r.name, r.state, as_utc(r.at), r.url) for r in rows}


def runs_for(conn: Connection, service_id: int, sha: str) -> tuple[EnvironmentRun, ...]:
    smoke = steps.alias("smoke")
    rows = conn.execute(
        select(deployments.c.environment, deployments.c.state, deployments.c.finished_at, smoke.c.state.label("smoke"))
        .outerjoin(smoke, and_(smoke.c.deployment_id == deployments.c.id, smoke.c.name == "smoke"))
        .where(
            deployments.c.service_id == service_id,
            deployments.c.sha == sha,
            deployments.c.state.in_([s.value for s in DeploymentState if s.finished]),
        )
        .order_by(deployments.c.seq)
    )
    return tuple(
        EnvironmentRun(r.environment, r.state, r.smoke or "absent", as_utc(r.finished_at) if r.finished_at else None)
        for r in rows
    )


def verifications_for(conn: Connection, service_id: int, sha: str) -> tuple[Verification, ...]:
    rows = conn.execute(
        select(verifications)
        .where(verifications.c.service_id == service_id, verifications.c.sha == sha)
        .order_by(verifications.c.id)
    )
    return tuple(Verification(r.environment, r.user, as_utc(r.at)) for r in rows)


def approvals_for(conn: Connection, deployment_id: str) -> tuple[Approval, ...]:
    rows = conn.execute(select(approvals).where(approvals.c.deployment_id == deployment_id).order_by(approvals.c.id))
    return tuple(Approval(r.user, tuple(r.roles), as_utc(r.at), r.comment) for r in rows)


def ticks_for(conn: Connection, deployment_id: str) -> dict[str, Tick]:
    rows = conn.execute(select(checklist_ticks).where(checklist_ticks.c.deployment_id == deployment_id))
    return {r.item: Tick(r.item, r.user, as_utc(r.at)) for r in rows}


def pending_with_sha(conn: Connection, sha: str) -> list[str]:
    rows = conn.execute(
        select(deployments.c.id).where(deployments.c.sha == sha, deployments.c.state == DeploymentState.PENDING.value)
    )
    return [r.id for r in rows]
