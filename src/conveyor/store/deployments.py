"""Queries for deployments, their step journal, releases and each environment's current release."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, func, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.domain.deployment import DeploymentKind, DeploymentState, StepState
from conveyor.errors import NotFound
from conveyor.store.db import serialize
from conveyor.store.records import DeploymentRecord, ReleaseRecord, StepRecord
from conveyor.store.tables import deployments, environments, releases, services, steps

_release = releases.alias("r")
_previous = releases.alias("p")


def _select_deployments() -> Select[Any]:
    return (
        select(
            deployments,
            services.c.name.label("service"),
            _release.c.version.label("version"),
            _previous.c.version.label("previous_version"),
        )
        .join(services, services.c.id == deployments.c.service_id)
        .outerjoin(_release, _release.c.id == deployments.c.release_id)
        .outerjoin(_previous, _previous.c.id == deployments.c.previous_release_id)
    )


def insert_deployment(
    conn: Connection,
    *,
    id: str,
    service_id: int,
    environment: str,
    kind: DeploymentKind,
    ref: str,
    sha: str,
    state: DeploymentState,
    actor: str,
    trigger: str,
    now: datetime,
    plan: Iterable[str],
    notes: str | None = None,
    ticket: str | None = None,
    release_id: int | None = None,
    emergency: bool = False,
    when_open: bool = False,
    maintenance: bool = False,
    with_database: bool = False,
) -> None:
    serialize(conn, "deployment_seq")
    seq = (conn.execute(select(func.max(deployments.c.seq))).scalar() or 0) + 1
    conn.execute(
        deployments.insert().values(
            id=id,
            seq=seq,
            service_id=service_id,
            environment=environment,
            kind=kind.value,
            ref=ref,
            sha=sha,
            release_id=release_id,
            state=state.value,
            actor=actor,
            trigger=trigger,
            notes=notes,
            ticket=ticket,
            cancel_requested=False,
            emergency=emergency,
            when_open=when_open,
            maintenance=maintenance,
            with_database=with_database,
            created_at=now,
        )
    )
    conn.execute(
        steps.insert(),
        [
            {"deployment_id": id, "position": i, "name": name, "state": StepState.PENDING.value}
            for i, name in enumerate(plan)
        ],
    )


def get_deployment(conn: Connection, deployment_id: str) -> DeploymentRecord:
    row = conn.execute(_select_deployments().where(deployments.c.id == deployment_id)).first()
    if row is None:
        raise NotFound(f"no deployment with id {deployment_id!r}", fix="list them with `conveyor history`")
    return DeploymentRecord.of(row)


def find_deployments(conn: Connection, prefix: str) -> list[str]:
    """Ids that start with ``prefix`` (the CLI accepts short ids, like git). ``%`` and ``_`` in the
    prefix are plain characters, never LIKE wildcards."""
    query = select(deployments.c.id).where(deployments.c.id.startswith(prefix, autoescape=True))
    rows = conn.execute(query.limit(2))
    return [r.id for r in rows]


def list_deployments(
    conn: Connection,
    *,
    service_id: int | None = None,
    environment: str | None = None,
    states: Iterable[DeploymentState] | None = None,
    limit: int = 50,
) -> list[DeploymentRecord]:
    query = _select_deployments().order_by(deployments.c.seq.desc()).limit(limit)
    if service_id is not None:
        query = query.where(deployments.c.service_id == service_id)
    if environment is not None:
        query = query.where(deployments.c.environment == environment)
    if states is not None:
        query = query.where(deployments.c.state.in_([s.value for s in states]))
    return [DeploymentRecord.of(r) for r in conn.execute(query)]


def set_fields(conn: Connection, deployment_id: str, **values: Any) -> None:
    if "state" in values:
        raise ValueError("a deployment's state changes only through engine.transitions.transition")
    conn.execute(update(deployments).where(deployments.c.id == deployment_id).values(**values))


def get_steps(conn: Connection, deployment_id: str) -> list[StepRecord]:
    rows = conn.execute(select(steps).where(steps.c.deployment_id == deployment_id).order_by(steps.c.position))
    return [StepRecord.of(r) for r in rows]


def update_step(conn: Connection, deployment_id: str, name: str, **values: Any) -> None:
    if "state" in values and isinstance(values["state"], StepState):
        values["state"] = values["state"].value
    conn.execute(update(steps).where(steps.c.deployment_id == deployment_id, steps.c.name == name).values(**values))


def skip_pending_steps(conn: Connection, deployment_id: str, state: StepState) -> None:
    conn.execute(
        update(steps)
        .where(
            steps.c.deployment_id == deployment_id,
            steps.c.state.in_([StepState.PENDING.value, StepState.RUNNING.value]),
        )
        .values(state=state.value)
    )


def get_release(conn: Connection, release_id: int) -> ReleaseRecord:
    row = conn.execute(select(releases).where(releases.c.id == release_id)).one()
    return ReleaseRecord.of(row)


def find_release(conn: Connection, service_id: int, version: str) -> ReleaseRecord | None:
    row = conn.execute(
        select(releases).where(releases.c.service_id == service_id, releases.c.version == version)
    ).first()
    return ReleaseRecord.of(row) if row else None


def ensure_release(
    conn: Connection, service_id: int, sha: str, version: str, tag: str | None, now: datetime
) -> ReleaseRecord:
    """The release ``version`` of this service, created if new. Versions are immutable."""
    found = find_release(conn, service_id, version)
    if found:
        return found
    try:
        with conn.begin_nested():
            conn.execute(
                releases.insert().values(service_id=service_id, sha=sha, version=version, tag=tag, created_at=now)
            )
    except IntegrityError:
        pass  # another writer created it first
    found = find_release(conn, service_id, version)
    assert found is not None
    return found


def current_release(conn: Connection, service_id: int, environment: str) -> ReleaseRecord | None:
    row = conn.execute(
        select(releases)
        .join(environments, environments.c.current_release_id == releases.c.id)
        .where(environments.c.service_id == service_id, environments.c.name == environment)
    ).first()
    return ReleaseRecord.of(row) if row else None


def set_current_release(
    conn: Connection,
    service_id: int,
    environment: str,
    release_id: int | None,
    deployment_id: str,
    now: datetime,
) -> None:
    where = and_(environments.c.service_id == service_id, environments.c.name == environment)
    values = {"current_release_id": release_id, "current_deployment_id": deployment_id, "updated_at": now}
    if conn.execute(update(environments).where(where).values(**values)).rowcount == 0:
        conn.execute(environments.insert().values(service_id=service_id, name=environment, **values))


def previous_releases(conn: Connection, service_id: int, environment: str) -> list[ReleaseRecord]:
    """Releases that succeeded in this environment, newest first, each once."""
    rows = conn.execute(
        select(releases, func.max(deployments.c.seq).label("last_seq"))
        .join(deployments, deployments.c.release_id == releases.c.id)
        .where(
            deployments.c.service_id == service_id,
            deployments.c.environment == environment,
            deployments.c.state == DeploymentState.SUCCEEDED.value,
            deployments.c.kind != "migrate",  # a migration alone never made its release serve
        )
        .group_by(*releases.c)
        .order_by(func.max(deployments.c.seq).desc())
    )
    return [ReleaseRecord.of(r) for r in rows]


def active_deployments(conn: Connection) -> list[DeploymentRecord]:
    """Deployments not yet finished: pending, queued or running."""
    return list_deployments(
        conn,
        states=[s for s in DeploymentState if not s.finished],
        limit=10_000,
    )


def built_deployments(conn: Connection, service_id: int, environment: str, sha: str) -> list[str]:
    """Ids of deployments of ``sha`` in this environment whose prepare step (worktree and build)
    succeeded, newest first: their worktrees hold that commit built for this environment."""
    rows = conn.execute(
        select(deployments.c.id)
        .join(steps, steps.c.deployment_id == deployments.c.id)
        .where(
            deployments.c.service_id == service_id,
            deployments.c.environment == environment,
            deployments.c.sha == sha,
            steps.c.name == "prepare",
            steps.c.state == StepState.SUCCEEDED.value,
        )
        .order_by(deployments.c.seq.desc())
    )
    return [r.id for r in rows]


def service_releases(conn: Connection, service_id: int) -> list[ReleaseRecord]:
    """Every release of the service, oldest first."""
    rows = conn.execute(select(releases).where(releases.c.service_id == service_id).order_by(releases.c.id))
    return [ReleaseRecord.of(r) for r in rows]


def set_release_tag(conn: Connection, release_id: int, tag: str) -> None:
    conn.execute(update(releases).where(releases.c.id == release_id).values(tag=tag))


def serving_version(conn: Connection, service_id: int, release: ReleaseRecord) -> str:
    """What to show for a serving release: its tag, or the tag its commit got since (a staging
    release deployed before production tagged the same commit), else its version."""
    if release.tag:
        return release.tag
    tagged = conn.execute(
        select(releases.c.tag)
        .where(releases.c.service_id == service_id, releases.c.sha == release.sha, releases.c.tag.is_not(None))
        .order_by(releases.c.id.desc())
    ).first()
    return str(tagged.tag) if tagged else release.version
