"""The Alertmanager signal: Alertmanager's webhook notifications (payload version 4), received at
``POST /api/v1/alerts/alertmanager`` and kept in ``monitor_alerts``; an alert whose labels
``service`` and ``environment`` name a deployment's service and environment, and that begins firing
during its monitoring window, is a breach of that deployment (one already firing is shown, not
counted).

The payload (Alertmanager's documented webhook_config body): ``version`` "4", ``receiver``,
``status``, ``groupKey``, ``alerts`` (each ``status`` firing|resolved, ``labels``,
``annotations``, ``startsAt``, ``endsAt``, ``generatorURL``, ``fingerprint``), the group's and
common labels, ``externalURL`` and ``truncatedAlerts``. Unknown keys are ignored (newer
Alertmanagers add some); a key Conveyor reads that is missing or of the wrong type refuses the
whole notification, naming the key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection

from conveyor.domain.monitoring import Finding
from conveyor.errors import InvalidInput
from conveyor.spec.monitor_signals import AlertsSpec
from conveyor.store.alerts import AlertInstance, AlertRecord, alerts_since

SIGNAL = "alertmanager"
_ZERO_YEAR = 1  # Alertmanager writes "0001-01-01T00:00:00Z" for "no end yet"
_KEPT_LABELS = ("alertname", "service", "environment")  # kept in columns of their own
_LABEL_MAX = 255
_FIX = "send Alertmanager's webhook notification as it is (webhook_configs with the default payload, version 4)"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class WebhookAlert(_Lenient):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL", max_length=4096)
    fingerprint: str = Field("", max_length=64)


class WebhookPayload(_Lenient):
    version: Literal["4"]
    receiver: str = Field(max_length=255)
    status: Literal["firing", "resolved"]
    alerts: list[WebhookAlert]
    group_key: str = Field("", alias="groupKey")
    group_labels: dict[str, str] = Field({}, alias="groupLabels")
    common_labels: dict[str, str] = Field({}, alias="commonLabels")
    external_url: str = Field("", alias="externalURL")
    truncated_alerts: int = Field(0, alias="truncatedAlerts", ge=0)


def parse_webhook(body: bytes) -> WebhookPayload:
    """The notification in ``body``, or InvalidInput naming what is wrong with it."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the body is not JSON: {exc}", fix=_FIX) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"the body is JSON {type(data).__name__}, not an Alertmanager notification", fix=_FIX)
    if "version" in data and data["version"] != "4":
        raise InvalidInput(
            f"webhook payload version {data['version']!r}: Conveyor reads version 4",
            fix="use an Alertmanager that sends version 4 (every release since 0.7)",
        )
    try:
        payload = WebhookPayload.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}" for error in exc.errors()[:5]
        )
        raise InvalidInput(f"not an Alertmanager notification: {problems}", fix=_FIX) from None
    for i, alert in enumerate(payload.alerts):
        ends_at = alert.ends_at if alert.ends_at is not None and alert.ends_at.year > _ZERO_YEAR else None
        for key, at in (("startsAt", alert.starts_at), ("endsAt", ends_at)):
            if at is None:
                continue
            try:
                _aware(at)
            except OverflowError:
                raise InvalidInput(f"alerts.{i}.{key}: {at.isoformat()} is out of range", fix=_FIX) from None
        for name in _KEPT_LABELS:
            if len(alert.labels.get(name, "")) > _LABEL_MAX:
                raise InvalidInput(
                    f"alerts.{i}.labels.{name} is {len(alert.labels[name])} characters long; Conveyor keeps "
                    f"at most {_LABEL_MAX}",
                    fix=f"shorten the {name} label",
                )
    return payload


def instances(payload: WebhookPayload, now: datetime) -> list[AlertInstance]:
    """The notification's alerts as rows to keep: an end only for a resolved alert (a resolved alert
    without one ends ``now``), a fingerprint computed from the labels when Alertmanager gave none."""
    out = []
    for alert in payload.alerts:
        ends_at = alert.ends_at if alert.ends_at is not None and alert.ends_at.year > _ZERO_YEAR else None
        if alert.status == "firing":
            ends_at = None
        elif ends_at is None:
            ends_at = now
        out.append(
            AlertInstance(
                fingerprint=alert.fingerprint or _fingerprint(alert.labels),
                status=alert.status,
                starts_at=_aware(alert.starts_at),
                ends_at=_aware(ends_at) if ends_at else None,
                labels=alert.labels,
                annotations=alert.annotations,
                generator_url=alert.generator_url or None,
            )
        )
    return out


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _fingerprint(labels: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16]


def alert_findings(
    conn: Connection, service: str, environment: str, since: datetime, match: Mapping[str, str] | None = None
) -> list[Finding]:
    """One finding per alert of this service and environment (labels ``service`` and
    ``environment``, and every label of ``match``) that fired at any moment since ``since``.

    An alert that began firing at or after ``since`` is a breach. One already firing before it is
    shown, not counted: the release did not cause it, and a release meant to fix it must not be
    rolled back because the alert has not resolved yet. If it resolves and fires again, that new
    firing (a new start) counts."""
    wanted = dict(match or {})
    found = [a for a in alerts_since(conn, service, environment, since) if _matches(a, wanted)]
    return [_finding(alert, since) for alert in found]


def findings_for(
    conn: Connection, spec: AlertsSpec | None, service: str, environment: str, since: datetime
) -> list[Finding]:
    """``alert_findings`` as ``monitor.alerts`` asks for them: none without it, or with
    ``alertmanager: false``."""
    if spec is None or not spec.alertmanager:
        return []
    return alert_findings(conn, service, environment, since, spec.match)


def _matches(alert: AlertRecord, wanted: Mapping[str, str]) -> bool:
    return all(alert.labels.get(name) == value for name, value in wanted.items())


def _finding(alert: AlertRecord, since: datetime) -> Finding:
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(alert.labels.items()) if k != "alertname")
    state = (
        f"resolved at {alert.ends_at:%Y-%m-%d %H:%M:%S} UTC"
        if alert.status == "resolved" and alert.ends_at
        else "still firing"
    )
    summary = alert.annotations.get("summary", "")
    name = alert.alertname or "(no alertname)"
    note = f"alert {name}{{{labels}}} fired at {alert.starts_at:%Y-%m-%d %H:%M:%S} UTC, {state}"
    if summary:
        note += f": {summary}"
    breached = alert.starts_at >= _aware(since)
    if not breached:
        note += f" (already firing when the window began at {_aware(since):%Y-%m-%d %H:%M:%S} UTC: not counted)"
    return Finding(SIGNAL, "alert", 1.0, "firing", None, breached, note)
