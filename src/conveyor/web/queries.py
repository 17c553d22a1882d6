"""Read queries the dashboard needs beyond the store's: what each environment serves (with who
deployed it), the history with its filters, the evidence of many pending deployments at once, and
the signed-in user's own API tokens. Each is one query (no query per row)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from conveyor.domain.clock import as_utc
from conveyor.domain.deployment import DeploymentState
from conveyor.errors import NotFound
from conveyor.store import deployments as store
from conveyor.store.records import DeploymentRecord
from conveyor.store.tables import approvals, checklist_ticks, deployments, environments, releases, tokens


@dataclass(frozen=True)
class Serving:
    """The release an environment serves and the deployment that put it there."""

    version: str
    sha: str
    deployment_id: str | None
    deployed_by: str | None
    deployed_at: datetime | None


def serving(conn: Connection) -> dict[tuple[int, str], Serving]:
    tagged = releases.alias("tagged")
    tag_of_commit = (  # the version shown is the commit's release tag when it has one
        select(tagged.c.tag)
        .where(tagged.c.service_id == releases.c.service_id, tagged.c.sha == releases.c.sha, tagged.c.tag.is_not(None))
        .order_by(tagged.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = conn.execute(
        select(
            environments.c.service_id,
            environments.c.name,
            func.coalesce(releases.c.tag, tag_of_commit, releases.c.version).label("version"),
            releases.c.sha,
            deployments.c.id,
            deployments.c.actor,
            deployments.c.finished_at,
        )
        .join(releases, releases.c.id == environments.c.current_release_id)
        .outerjoin(deployments, deployments.c.id == environments.c.current_deployment_id)
    )
    return {
        (r.service_id, r.name): Serving(
            r.version, r.sha, r.id, r.actor, as_utc(r.finished_at) if r.finished_at else None
        )
        for r in rows
    }


def history(
    conn: Connection,
    *,
    service_id: int | None = None,
    environment: str | None = None,
    state: DeploymentState | None = None,
    actor: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[DeploymentRecord]:
    """Newest first; ``before`` is a sequence number (the next page starts below the last one shown)."""
    query = store._select_deployments().order_by(deployments.c.seq.desc()).limit(limit)
    if service_id is not None:
        query = query.where(deployments.c.service_id == service_id)
    if environment:
        query = query.where(deployments.c.environment == environment)
    if state is not None:
        query = query.where(deployments.c.state == state.value)
    if actor:
        query = query.where(deployments.c.actor == actor)
    if before is not None:
        query = query.where(deployments.c.seq < before)
    return [DeploymentRecord.of(r) for r in conn.execute(query)]


def approvers_of(conn: Connection, deployment_ids: Iterable[str]) -> dict[str, set[str]]:
    ids = list(deployment_ids)
    found: dict[str, set[str]] = {i: set() for i in ids}
    if ids:
        rows = conn.execute(
            select(approvals.c.deployment_id, approvals.c.user).where(approvals.c.deployment_id.in_(ids))
        )
        for r in rows:
            found[r.deployment_id].add(r.user)
    return found


def ticked_items(conn: Connection, deployment_ids: Iterable[str]) -> dict[str, set[str]]:
    ids = list(deployment_ids)
    found: dict[str, set[str]] = {i: set() for i in ids}
    if ids:
        rows = conn.execute(
            select(checklist_ticks.c.deployment_id, checklist_ticks.c.item).where(
                checklist_ticks.c.deployment_id.in_(ids)
            )
        )
        for r in rows:
            found[r.deployment_id].add(r.item)
    return found


def own_tokens(conn: Connection, user_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(tokens).where(tokens.c.user_id == user_id).order_by(tokens.c.id.desc()))
    return [
        {
            "id": r.id,
            "prefix": r.prefix,
            "name": r.name,
            "created_at": as_utc(r.created_at),
            "last_used_at": as_utc(r.last_used_at) if r.last_used_at else None,
            "revoked_at": as_utc(r.revoked_at) if r.revoked_at else None,
        }
        for r in rows
    ]


def revoke_own_token(conn: Connection, user_id: int, token_id: int, now: datetime) -> str:
    """Revoke one of the user's own tokens and return its prefix; NotFound for anyone else's."""
    row = conn.execute(select(tokens).where(tokens.c.id == token_id, tokens.c.user_id == user_id)).first()
    if row is None:
        raise NotFound(f"you have no API token with id {token_id}", fix="pick one from the list on this page")
    if row.revoked_at is None:
        conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_at=now))
    return str(row.prefix)


@dataclass(frozen=True)
class Success:
    deployment_id: str
    actor: str
    finished_at: datetime | None


def last_successes(conn: Connection, service_id: int, environment: str) -> dict[int, Success]:
    """Per release: the latest deployment that succeeded with it in this environment."""
    rows = conn.execute(
        select(deployments.c.release_id, deployments.c.id, deployments.c.actor, deployments.c.finished_at)
        .where(
            deployments.c.service_id == service_id,
            deployments.c.environment == environment,
            deployments.c.state == DeploymentState.SUCCEEDED.value,
            deployments.c.release_id.is_not(None),
        )
        .order_by(deployments.c.seq)
    )
    return {r.release_id: Success(r.id, r.actor, as_utc(r.finished_at) if r.finished_at else None) for r in rows}
