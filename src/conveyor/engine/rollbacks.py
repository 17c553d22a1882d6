"""Asking for a rollback: an earlier release again, and (docs/database.md) the schema it expects.
A destructive migration that ran after the target release refuses a plain rollback with the
explanation; ``with_database`` takes the database back too (migrate.down, or database.restore
from the backup before that migration); a release manager may override with a reason (audited)."""

from __future__ import annotations

import uuid

from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth.policy import may_deploy
from conveyor.domain.deployment import ROLLBACK_STEPS, DeploymentKind, DeploymentState, with_database_plan
from conveyor.domain.schema_gap import FIX, SchemaChange, gap_sentence
from conveyor.domain.text import check_single_line
from conveyor.engine import pipeline
from conveyor.engine.schema_rollback import backup_before, schema_gap
from conveyor.errors import Conflict, InvalidInput, NotFound
from conveyor.runtime import Runtime
from conveyor.spec import EnvironmentSpec
from conveyor.spec import LocalTarget as LocalTargetSpec
from conveyor.store import deployments as store
from conveyor.store import services as service_store
from conveyor.store.records import DeploymentRecord, ReleaseRecord, ServiceRecord

SCHEMA_OVERRIDERS = ("release_manager",)


def request_rollback(
    rt: Runtime,
    *,
    environment: str,
    actor: str,
    roles: tuple[str, ...],
    service: str | None = None,
    to: str | None = None,
    with_database: bool = False,
    override_schema: bool = False,
    reason: str | None = None,
) -> DeploymentRecord:
    """Deploy an earlier release again: ``to`` names its version, else the one before the current.
    Who may deploy to the environment may roll it back; the other gates do not hold a rollback up."""
    with rt.db.begin() as conn:
        svc = service_store.pick_service(conn, service)
    env = rt.spec_of(svc.config_text).environment(environment)
    decision = may_deploy(actor, roles, environment, env)
    if not decision.allowed:
        raise refuse(rt, actor, "rollback", f"{svc.name}/{environment}", decision.reason)
    if with_database and override_schema:
        raise InvalidInput(
            "--with-database and --override-schema exclude each other",
            fix="take the database back with --with-database, or keep it as it is with --override-schema",
        )
    check_single_line(reason, "reason")
    current, chosen = pick_target(rt, svc, environment, to)
    with rt.db.read() as conn:
        gap = schema_gap(conn, svc.id, environment, chosen)
    if override_schema:
        check_override(rt, svc, environment, actor, roles, reason)
    elif gap and not with_database:
        raise Conflict(gap_sentence(chosen.version, gap), fix=FIX)
    if with_database:
        check_with_database(rt, svc, environment, env, chosen)
    plan = with_database_plan(smoke=env.smoke is not None) if with_database else ROLLBACK_STEPS
    return _record(rt, svc, environment, actor, current, chosen, plan, with_database, override_schema, reason, gap)


def pick_target(
    rt: Runtime, svc: ServiceRecord, environment: str, to: str | None
) -> tuple[ReleaseRecord | None, ReleaseRecord]:
    """The release serving now and the one to go back to (``to``, else the one before)."""
    with rt.db.begin() as conn:
        current = store.current_release(conn, svc.id, environment)
        earlier = [
            r for r in store.previous_releases(conn, svc.id, environment) if current is None or r.id != current.id
        ]
    if to is not None:
        chosen = next((r for r in earlier if r.version == to), None)
        if chosen is None:
            known = ", ".join(r.version for r in earlier) or "none"
            raise NotFound(
                f"{to!r} is not an earlier release of {svc.name} in {environment}",
                fix=f"pick one of: {known}",
            )
        return current, chosen
    if not earlier:
        raise Conflict(f"{svc.name} has no earlier successful release in {environment} to roll back to")
    return current, earlier[0]


def check_override(
    rt: Runtime, svc: ServiceRecord, environment: str, actor: str, roles: tuple[str, ...], reason: str | None
) -> None:
    if not any(r in SCHEMA_OVERRIDERS for r in roles):
        why = f"{actor} may not override the schema check of a rollback; only a release manager may"
        raise refuse(rt, actor, "rollback.schema_override", f"{svc.name}/{environment}", why)
    if not (reason or "").strip():
        raise InvalidInput(
            "--override-schema needs a reason", fix='add --reason "why the older code runs on the newer schema"'
        )


def database_way(env: EnvironmentSpec) -> str | None:
    """How a rollback takes this environment's database back: ``down``, ``restore``, or None."""
    if env.migrate is not None and env.migrate.down is not None:
        return "down"
    if env.database is not None and env.database.restore is not None:
        return "restore"
    return None


def check_with_database(
    rt: Runtime, svc: ServiceRecord, environment: str, env: EnvironmentSpec, chosen: ReleaseRecord
) -> None:
    if not isinstance(env.target, LocalTargetSpec):
        raise InvalidInput(
            f"--with-database: {environment} uses a {env.target.kind!r} target, which has no maintenance mode "
            "to stop traffic while the database goes back",
            fix="use a local target, or take the database back by hand and roll back the code alone",
        )
    way = database_way(env)
    if way is None:
        raise InvalidInput(
            f"--with-database: {environment} has neither migrate.down nor database.backup/restore, "
            "so Conveyor has no way to take its database back",
            fix="add `down:` to the environment's migrate (a command that undoes the release's migrations), "
            "or `database: {backup: ..., restore: ...}`",
        )
    if way == "restore":
        with rt.db.read() as conn:
            backup = backup_before(conn, svc.id, environment, chosen)
        if backup is None:
            raise Conflict(
                f"--with-database: no backup of {environment}'s database was taken after {chosen.version} "
                "served, so database.restore has nothing to restore",
                fix="add migrate.down to undo the migrations instead, or restore the database by hand",
            )


def _record(
    rt: Runtime,
    svc: ServiceRecord,
    environment: str,
    actor: str,
    current: ReleaseRecord | None,
    chosen: ReleaseRecord,
    plan: tuple[str, ...],
    with_database: bool,
    override_schema: bool,
    reason: str | None,
    gap: tuple[SchemaChange, ...],
) -> DeploymentRecord:
    deployment_id = str(uuid.uuid4())
    now = rt.clock.now()
    what = f"rollback from {current.version if current else 'nothing'} to {chosen.version}"
    with rt.db.begin() as conn:
        store.insert_deployment(
            conn,
            id=deployment_id,
            service_id=svc.id,
            environment=environment,
            kind=DeploymentKind.ROLLBACK,
            ref=chosen.version,
            sha=chosen.sha,
            state=DeploymentState.QUEUED,
            actor=actor,
            trigger="rollback",
            now=now,
            plan=plan,
            release_id=chosen.id,
            notes=what + (" with the database" if with_database else ""),
            with_database=with_database,
        )
        details = {
            "service": svc.name,
            "environment": environment,
            "to": chosen.version,
            "from": current.version if current else None,
            **({"with_database": True} if with_database else {}),
        }
        audit.append(conn, at=now, actor=actor, action="rollback.requested", subject=deployment_id, details=details)
        if override_schema:
            audit.append(
                conn,
                at=now,
                actor=actor,
                action="rollback.schema_override",
                subject=deployment_id,
                details={**details, "reason": reason, "changes": [c.as_json() for c in gap]},
            )
    with rt.db.begin() as conn:
        record = store.get_deployment(conn, deployment_id)
    pipeline.enqueue(record)
    return record
