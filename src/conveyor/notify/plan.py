"""The event stream's consumer for notifications: for each event, the messages each notifier of
the deployment's environment is to send, written to the outbox in the consumer's transaction (so
each event is planned exactly once). Nothing is sent here: sending is the sender's (``host``), so
no notifier can hold up the stream, let alone a deployment."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from conveyor.domain.events import DeploymentMoved, GatesChanged, Recorded, StepFinished, StoredEvent
from conveyor.errors import ConveyorError
from conveyor.notify.base import notifier
from conveyor.runtime import Runtime
from conveyor.spec.models import NotifierSpec
from conveyor.store import deployments as store
from conveyor.store import hotfix_log
from conveyor.store import notifications as outbox
from conveyor.store import services as service_store
from conveyor.store.records import DeploymentRecord

CONSUMER = "notify"
_ENDS = {"succeeded", "failed", "rolled_back", "cancelled"}
_REQUESTS = {"deployment.requested", "rollback.requested"}
BREACH = "deployment.monitoring_breach"  # engine/monitoring_end.py: a breach that did not end the deployment


def event_of(stored: StoredEvent, d: DeploymentRecord) -> str | None:
    """The notification event a stream event is, for deployment ``d`` (None: not one)."""
    e = stored.event
    if isinstance(e, Recorded) and e.action in _REQUESTS:
        return "requested"
    if isinstance(e, Recorded) and e.action == hotfix_log.DUE:
        return "merge_back_due"  # a hotfix deployment that could not be merged back into a branch
    if isinstance(e, Recorded) and e.action == BREACH:
        return "monitoring_breach"
    if isinstance(e, GatesChanged):
        waiting = "approval" in e.failing or (d.emergency and "schedule" in e.failing)
        return "approval" if waiting else None
    if isinstance(e, StepFinished):
        return "step"
    if isinstance(e, DeploymentMoved):
        if e.to_state == "running":
            return "started"
        if e.to_state == "succeeded" and d.kind == "rollback":
            return "rolled_back"  # a rollback deployment that worked: the environment was rolled back
        if e.to_state in _ENDS:
            return e.to_state
    return None


def _deployment_of(stored: StoredEvent) -> str | None:
    e = stored.event
    if isinstance(e, Recorded):
        if e.action == hotfix_log.DUE:  # subject SERVICE/BRANCH; the details name the hotfix's deployment
            found = e.details.get("deployment")
            return str(found) if found else None
        return e.subject if e.action in _REQUESTS or e.action == BREACH else None
    if isinstance(e, GatesChanged | StepFinished | DeploymentMoved):
        return e.subject
    return None


def destination(service: str, environment: str, index: int, kind: str) -> str:
    return f"{service}/{environment}/{index}:{kind}"


def config_of(entry: NotifierSpec) -> dict[str, Any]:
    """The entry as the outbox keeps it (secrets stay ``${NAME}``: they are resolved when sending)."""
    if entry.slack is not None:
        s = entry.slack
        return {"kind": "slack", "webhook": s.webhook, "token": s.token, "channel": s.channel, "events": s.events}
    if entry.webhook is not None:
        w = entry.webhook
        return {"kind": "webhook", "url": w.url, "secret": w.secret, "events": w.events}
    if entry.email is not None:
        return {"kind": "email", "to": entry.email.to, "events": entry.email.events}
    assert entry.github is not None
    return {"kind": "github", "token": entry.github.token, "repository": entry.github.repository}


def handle(rt: Runtime, conn: Connection, stored: StoredEvent, now: datetime) -> None:
    deployment_id = _deployment_of(stored)
    if deployment_id is None:
        return
    try:
        d = store.get_deployment(conn, deployment_id)
    except ConveyorError:
        return  # an audit entry naming a deployment this database lacks: nothing to tell, and no reason to stall
    name = event_of(stored, d)
    if name is None:
        return
    service = service_store.get_service_by_id(conn, d.service_id)
    try:
        env = rt.spec_of(service.config_text).environment(d.environment)
    except ConveyorError:
        return  # the environment is gone from the service's configuration: nobody to tell
    context = {"kind": stored.event.kind, "payload": stored.event.payload(), "at": stored.at.isoformat()}
    for index, entry in enumerate(env.notify):
        config = config_of(entry)
        if name not in notifier(entry.kind).events(config):
            continue
        where = destination(service.name, d.environment, index, entry.kind)
        if name == "approval" and outbox.exists(conn, d.id, where, "approval"):
            continue  # approvers are asked once per deployment, not at every gate change
        outbox.add(
            conn,
            position=stored.position,
            deployment_id=d.id,
            destination=where,
            notifier=entry.kind,
            event=name,
            config=config,
            context=context,
            now=now,
        )
