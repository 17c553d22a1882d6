"""Inbound GitHub webhooks. Every delivery is verified with X-Hub-Signature-256 over the raw body
before anything is read from it; a bad or missing signature gets 401 and records nothing.

``/hooks/github`` checks the server-wide secret; ``/hooks/github/SERVICE`` checks that service's own
secret (CONVEYOR_GITHUB_WEBHOOK_SECRETS), or the server-wide one when it has none. What happens to a
verified delivery (repository binding, replay detection, evidence) is in engine/github_intake.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from conveyor.api.deps import RuntimeDep
from conveyor.api.models import HookDelivery
from conveyor.engine import github_intake
from conveyor.errors import InvalidInput, Unauthorized
from conveyor.vcs.github_events import decode_payload
from conveyor.vcs.webhooks import verify_github_signature

router = APIRouter(prefix="/api/v1/hooks", tags=["hooks"])
_DELIVERY_ID = 64


@router.post("/github", status_code=202, response_model_exclude_unset=True)
async def github(request: Request, rt: RuntimeDep) -> HookDelivery:
    """A delivery signed with the server-wide secret."""
    secret = rt.settings.github_webhook_secret
    if not secret:
        raise Unauthorized(
            "GitHub webhooks are not enabled on this server",
            fix="set CONVEYOR_GITHUB_WEBHOOK_SECRET to the webhook's secret",
        )
    return await _handle(request, rt, secret, None)


@router.post("/github/{service}", status_code=202, response_model_exclude_unset=True)
async def github_for_service(service: str, request: Request, rt: RuntimeDep) -> HookDelivery:
    """A delivery for one service, signed with its own secret (or the server-wide one if it has none)."""
    own = rt.settings.github_webhook_secrets.get(service)
    secret = own or rt.settings.github_webhook_secret
    if not secret:
        raise Unauthorized(
            "GitHub webhooks are not enabled for this service",
            fix="set its secret in CONVEYOR_GITHUB_WEBHOOK_SECRETS, or CONVEYOR_GITHUB_WEBHOOK_SECRET",
        )
    return await _handle(request, rt, secret, service, own_secret=bool(own))


async def _handle(
    request: Request, rt: RuntimeDep, secret: str, service: str | None, own_secret: bool = False
) -> HookDelivery:
    body = await request.body()
    if not verify_github_signature(secret, body, request.headers.get("x-hub-signature-256")):
        raise Unauthorized(
            "the X-Hub-Signature-256 header is missing or does not match the body",
            fix="configure the same secret on GitHub and in Conveyor",
        )
    event = request.headers.get("x-github-event", "")
    if event == "ping":
        return HookDelivery(event="ping", deployments=[])
    if event not in github_intake.HANDLED:
        return HookDelivery(event=event[:64], deployments=[], ignored=True)  # keys in the model's order
    delivery_id = request.headers.get("x-github-delivery", "").strip()
    if not delivery_id or len(delivery_id) > _DELIVERY_ID:
        raise InvalidInput(
            "the delivery has no usable X-GitHub-Delivery header",
            fix="send deliveries as GitHub does: each with its delivery id",
        )
    payload = decode_payload(body, request.headers.get("content-type", ""), event)
    delivery = github_intake.Delivery(event, delivery_id, payload, service, own_secret)
    return HookDelivery.model_validate(await run_in_threadpool(github_intake.accept, rt, delivery))
