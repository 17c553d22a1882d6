"""Queries for the evidence gates look at: reviews, CI checks, approvals, checklist ticks,
sign-offs, and the same commit's deployments in other environments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, delete, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError

from conveyor.domain.clock import as_utc
from conveyor.domain.deployment import DeploymentState
from conveyor.domain.evidence import Approval, Check, EnvironmentRun, Review, Tick, Verification
from conveyor.errors import Conflict
from conveyor.store.records import ServiceRecord
from conveyor.store.tables import (
    approvals,
    checklist_ticks,
    checks,
    deployments,
    pull_requests,
    reviews,
    steps,
    verifications,
    webhook_deliveries,
)


def record_pull_request(
    conn: Connection,
    repository: str,
    number: int,
    head_sha: str,
    merge_sha: str | None,
    author: str,
    now: datetime,
    *,
    repository_id: int | None = None,
    event_at: datetime | None = None,
) -> None:
    """Insert or update a pull request; an event older than the one recorded changes nothing."""
    values = {
        "head_sha": head_sha,
        "merge_commit_sha": merge_sha,
        "author": author,
        "updated_at": now,
        "repository_id": repository_id,
        "event_at": event_at or now,
    }
    where = and_(pull_requests.c.repository == repository, pull_requests.c.number == number)
    if conn.execute(select(pull_requests.c.number).where(where)).first() is None:
        conn.execute(pull_requests.insert().values(repository=repository, number=number, **values))
        return
    newer = or_(pull_requests.c.event_at.is_(None), pull_requests.c.event_at <= values["event_at"])
    conn.execute(update(pull_requests).where(where, newer).values(**values))


@dataclass(frozen=True)
class Provenance:
    """Where a piece of GitHub evidence came from, and when it happened (the event's own time)."""

    repository: str | None = None  # owner/name, lower case; None when reported through the API
    repository_id: int | None = None
    event_at: datetime | None = None
    delivery_id: str | None = None


def record_delivery(conn: Connection, delivery_id: str, event: str, repository: str | None, now: datetime) -> bool:
    """Remember an X-GitHub-Delivery id; False when it was seen before (a replay)."""
    try:
        with conn.begin_nested():
            conn.execute(
                webhook_deliveries.insert().values(
                    delivery_id=delivery_id, event=event, repository=repository, received_at=now
                )
            )
        return True
    except IntegrityError:
        return False


def forget_delivery(conn: Connection, delivery_id: str) -> None:
    """Let GitHub retry a delivery whose processing failed."""
    conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.delivery_id == delivery_id))


def record_review(
    conn: Connection,
    *,
    sha: str,
    reviewer: str,
    author: str,
    state: str,
    source: str,
    at: datetime,
    pr_number: int | None = None,
    origin: Provenance = Provenance(),
) -> None:
    conn.execute(
        reviews.insert().values(
            sha=sha,
            reviewer=reviewer,
            author=author,
            state=state,
            source=source,
            at=at,
            repository=origin.repository,
            pr_number=pr_number,
            repository_id=origin.repository_id,
            event_at=origin.event_at or at,
            delivery_id=origin.delivery_id,
        )
    )


def record_check(
    conn: Connection,
    sha: str,
    name: str,
    state: str,
    url: str | None,
    by: str,
    at: datetime,
    origin: Provenance = Provenance(),
) -> None:
    conn.execute(
        checks.insert().values(
            sha=sha,
            name=name,
            state=state,
            url=url,
            reported_by=by,
            at=at,
            repository=origin.repository,
            repository_id=origin.repository_id,
            event_at=origin.event_at or at,
            delivery_id=origin.delivery_id,
        )
    )


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


def _from_service(table: Table, service: ServiceRecord) -> ColumnElement[bool]:
    """Evidence that counts for ``service``: reported through the API (no repository), or from the
    GitHub repository the service is bound to (by name, and by id once one is recorded)."""
    if not service.github_repository:
        return table.c.repository.is_(None)
    same_id = (
        true()
        if service.github_repository_id is None
        else or_(table.c.repository_id.is_(None), table.c.repository_id == service.github_repository_id)
    )
    return or_(table.c.repository.is_(None), and_(func.lower(table.c.repository) == service.github_repository, same_id))


def _when(row: Any) -> datetime:
    return as_utc(row.event_at or row.at)


def reviews_for(conn: Connection, sha: str, service: ServiceRecord) -> tuple[Review, ...]:
    """Reviews of the commit itself, or of the head of a pull request of the service's repository
    that was merged as it; oldest event first (the event's own time, not when it arrived)."""
    heads = select(pull_requests.c.head_sha).where(
        pull_requests.c.merge_commit_sha == sha, _from_service(pull_requests, service)
    )
    rows = conn.execute(
        select(reviews).where(or_(reviews.c.sha == sha, reviews.c.sha.in_(heads)), _from_service(reviews, service))
    )
    ordered = sorted(rows, key=lambda r: (_when(r), r.id))
    return tuple(Review(r.reviewer, r.author, r.state, _when(r)) for r in ordered)


def checks_for(conn: Connection, sha: str, service: ServiceRecord) -> dict[str, Check]:
    """The latest result of each check on the commit, by the event's own time."""
    rows = conn.execute(select(checks).where(checks.c.sha == sha, _from_service(checks, service)))
    latest: dict[str, Any] = {}
    for r in sorted(rows, key=lambda r: (_when(r), r.id)):
        latest[r.name] = r
    return {name: Check(r.name, r.state, _when(r), r.url) for name, r in latest.items()}


def runs_for(conn: Connection, service_id: int, sha: str) -> tuple[EnvironmentRun, ...]:
    smoke = steps.alias("smoke")
    rows = conn.execute(
        select(deployments.c.environment, deployments.c.state, deployments.c.finished_at, smoke.c.state.label("smoke"))
        .outerjoin(smoke, and_(smoke.c.deployment_id == deployments.c.id, smoke.c.name == "smoke"))
        .where(
            deployments.c.service_id == service_id,
            deployments.c.sha == sha,
            deployments.c.state.in_([s.value for s in DeploymentState if s.finished]),
            deployments.c.kind != "migrate",  # a migration alone is no run of the code there
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
