"""webhook: each event as JSON, POSTed to a URL and signed like GitHub's webhooks:
``X-Conveyor-Signature-256: sha256=HEX`` is the HMAC-SHA256 of the body under the secret;
``X-Conveyor-Event`` names the event and ``X-Conveyor-Delivery`` is the same on every retry of one
delivery, so a receiver can drop a repeat."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx

from conveyor import __version__, httpclient
from conveyor.notify.base import NOTIFIERS, Delivery, Refused, Retry, resolve

SIGNATURE = "X-Conveyor-Signature-256"
_NAMESPACE = uuid.UUID("6f1c2a4e-0d7b-4c55-9a51-7e0f0c3b9d14")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body_of(delivery: Delivery) -> dict[str, Any]:
    v = delivery.message.values
    keys = (
        "id",
        "service",
        "environment",
        "kind",
        "ref",
        "sha",
        "version",
        "previous_version",
        "actor",
        "ticket",
        "emergency",
        "emergency_reason",
        "reason",
        "dashboard_url",
    )
    body: dict[str, Any] = {
        "event": delivery.message.event,
        "delivery": delivery_id(delivery),
        "deployment": {k: v.get(k) for k in keys} if delivery.deployment_id else None,
        "text": delivery.message.text,
    }
    if delivery.message.event == "step":
        body["step"] = {"name": v.get("step"), "state": v.get("step_state"), "message": v.get("step_message")}
    if delivery.message.event == "approval":
        body["approvers"] = v.get("approver_names", [])
    if delivery.message.event == "merge_back_due":
        body["merge_back"] = {
            "branch": v.get("branch"),
            "files": v.get("files", []),
            "reason": v.get("merge_back_reason"),
        }
    if delivery.message.event == "succeeded":
        body["changes"] = [{"sha": c["sha"], "subject": c["title"]} for c in v.get("changes", [])]
    if delivery.deployment_id is None:
        body["service"], body["environment"] = v.get("service"), v.get("environment")
    return body


def delivery_id(delivery: Delivery) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{delivery.destination}#{delivery.id}"))


class WebhookNotifier:
    style = "plain"

    def events(self, config: dict[str, Any]) -> frozenset[str]:
        return frozenset(config.get("events") or ())

    def send(self, delivery: Delivery) -> str:
        url = str(resolve(delivery.config["url"], "webhook.url"))
        body = json.dumps(body_of(delivery), separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"Conveyor/{__version__}",
            "X-Conveyor-Event": delivery.message.event,
            "X-Conveyor-Delivery": delivery_id(delivery),
        }
        secret = resolve(delivery.config.get("secret"), "webhook.secret")
        if secret:
            headers[SIGNATURE] = sign(secret, body)
        response = httpclient.post(url, content=body, headers=headers, timeout=delivery.timeout)
        if response.is_success:
            return f"{response.status_code} from {httpx.URL(url).host}"
        detail = f"{url} answered {response.status_code}"
        if response.status_code in (408, 429) or response.status_code >= 500:
            after = response.headers.get("Retry-After")
            raise Retry(detail, float(after) if after and after.isdigit() else None)
        raise Refused(detail)


NOTIFIERS.register("webhook", WebhookNotifier())
