"""What a rollback would leave behind in the database: the destructive migrations that ran in the
environment after the target release, up to the serving one (docs/database.md, "Rollback")."""

from __future__ import annotations

from sqlalchemy import Connection

from conveyor.domain.deployment import DeploymentKind, DeploymentState, StepState
from conveyor.domain.schema_gap import SchemaChange
from conveyor.store import deployments as store
from conveyor.store import schema_changes
from conveyor.store.records import DeploymentRecord, ReleaseRecord


def schema_gap(conn: Connection, service_id: int, environment: str, target: ReleaseRecord) -> tuple[SchemaChange, ...]:
    """Each successful migration run since the target's schema was last in place (see ``_since``)
    with its report's destructive findings; runs that destroyed nothing are left out. Empty: the
    target's code finds the schema it expects."""
    since = _since(conn, service_id, environment, target)
    changes: list[SchemaChange] = []
    for run in schema_changes.runs_in(conn, service_id, environment):
        d = store.get_deployment(conn, run.deployment_id)
        if d.seq <= since:
            continue
        report = schema_changes.report_for(conn, run.deployment_id)
        destructive = report.destructive if report else ()
        if destructive:
            changes.append(SchemaChange(run.deployment_id, d.version or run.sha[:12], destructive))
    return tuple(changes)


def unreported(conn: Connection, service_id: int, environment: str, target: ReleaseRecord) -> tuple[str, ...]:
    """The versions whose migration ran since the target with no lint report (``lint: false``):
    Conveyor cannot tell whether they removed what the target's code reads."""
    since = _since(conn, service_id, environment, target)
    found: list[str] = []
    for run in schema_changes.runs_in(conn, service_id, environment):
        d = store.get_deployment(conn, run.deployment_id)
        if d.seq > since and schema_changes.report_for(conn, run.deployment_id) is None:
            found.append(d.version or run.sha[:12])
    return tuple(dict.fromkeys(found))


def backup_before(conn: Connection, service_id: int, environment: str, target: ReleaseRecord) -> str | None:
    """The backup taken before the first migration after the target release (for database.restore)."""
    since = _since(conn, service_id, environment, target)
    for run in schema_changes.runs_in(conn, service_id, environment):
        if store.get_deployment(conn, run.deployment_id).seq > since:
            return run.backup
    return None


def _since(conn: Connection, service_id: int, environment: str, target: ReleaseRecord) -> int:
    """The sequence number of the last deployment after which the environment's schema was the
    target's: a successful deploy or rollback of it, or a with-database rollback to it whose
    ``database`` step succeeded (the schema is back even if a later step failed). 0: never."""
    deployments = store.list_deployments(conn, service_id=service_id, environment=environment, limit=10_000)
    seqs = [d.seq for d in deployments if d.release_id == target.id and _put_schema_back(conn, d)]
    return max(seqs, default=0)


def _put_schema_back(conn: Connection, d: DeploymentRecord) -> bool:
    if d.kind == DeploymentKind.MIGRATE:
        return False
    if d.state == DeploymentState.SUCCEEDED:
        return True
    if not d.with_database:
        return False
    return any(s.name == "database" and s.state == StepState.SUCCEEDED for s in store.get_steps(conn, d.id))
