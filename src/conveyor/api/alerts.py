"""Alertmanager's webhook receiver: ``POST /api/v1/alerts/alertmanager`` keeps the firing and
resolved alerts of each notification (monitor/alertmanager.py reads them as a monitoring signal).

Alertmanager authenticates with a bearer token (``http_config.authorization.credentials`` in its
``webhook_configs``) of an account holding a role of CONVEYOR_ALERT_REPORTER_ROLES (default
``reporter``); other roles are refused (403, audited). A body that is not a version 4 notification
is refused with 400 naming what is wrong, and nothing is kept."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from conveyor.api.deps import RuntimeDep, UserDep
from conveyor.api.models import Wire
from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth.users import User
from conveyor.monitor.alertmanager import WebhookPayload, instances, parse_webhook
from conveyor.runtime import Runtime
from conveyor.store.alerts import record_alerts

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its ``$defs`` put in place: OpenAPI resolves no local ``$defs``."""
    defs = schema.pop("$defs", {})

    def place(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return place(defs[ref.removeprefix("#/$defs/")])
            return {key: place(value) for key, value in node.items()}
        if isinstance(node, list):
            return [place(item) for item in node]
        return node

    placed: dict[str, Any] = place(schema)
    return placed


# the body is read raw (to refuse it with a message naming the bad key); declared for clients and fuzzers
_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inlined(WebhookPayload.model_json_schema(by_alias=True))}},
    }
}


class AlertsReceived(Wire):
    """What Conveyor kept of one notification."""

    receiver: str
    alerts: int  # alerts in the notification
    new: int  # alert instances seen for the first time
    resolved: int  # known firing instances that resolved with this notification
    repeated: int  # instances already known in the state they were sent in


@router.post("/alertmanager", openapi_extra=_BODY)
async def alertmanager(request: Request, rt: RuntimeDep, user: UserDep) -> AlertsReceived:
    """One Alertmanager webhook notification (payload version 4). Needs a role of
    CONVEYOR_ALERT_REPORTER_ROLES (default reporter)."""
    allowed = tuple(r.strip() for r in rt.settings.alert_reporter_roles.split(",") if r.strip())
    if not any(user.has_role(role) for role in allowed):
        reason = f"{user.name} may not report alerts; only {', '.join(allowed) or 'no role'} may (Alertmanager)"
        raise await run_in_threadpool(refuse, rt, user.name, "report alerts", "alertmanager", reason)
    payload = parse_webhook(await request.body())
    return await run_in_threadpool(_keep, rt, user, payload)


def _keep(rt: Runtime, user: User, payload: WebhookPayload) -> AlertsReceived:
    """Keep the notification's alerts; once more if another notification inserted one of them
    meanwhile (two Alertmanagers of a cluster both send), which then finds it and updates it."""
    try:
        return _keep_once(rt, user, payload)
    except IntegrityError:
        return _keep_once(rt, user, payload)


def _keep_once(rt: Runtime, user: User, payload: WebhookPayload) -> AlertsReceived:
    now = rt.clock.now()
    rows = instances(payload, now)
    with rt.db.begin() as conn:
        new, resolved, repeated = record_alerts(conn, rows, payload.receiver, user.name, now)
        if new or resolved:  # a repeat of known alerts changes nothing worth an audit entry
            audit.append(
                conn,
                at=now,
                actor=user.name,
                action="alerts.received",
                subject=payload.receiver[:64],
                details={
                    "group": payload.group_key[:255],
                    "new": new,
                    "resolved": resolved,
                    "alerts": sorted({r.labels.get("alertname", "") for r in rows})[:20],
                },
            )
    return AlertsReceived(receiver=payload.receiver, alerts=len(rows), new=new, resolved=resolved, repeated=repeated)
