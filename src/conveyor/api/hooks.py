"""Inbound webhooks. GitHub push events are verified with X-Hub-Signature-256 before anything
is read from them; a bad or missing signature gets 401 and records nothing."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from conveyor.api.deps import RuntimeDep
from conveyor.engine.triggers import on_push
from conveyor.errors import InvalidInput, Unauthorized
from conveyor.vcs.webhooks import parse_push_event, verify_github_signature

router = APIRouter(prefix="/api/v1/hooks", tags=["hooks"])


@router.post("/github", status_code=202)
async def github(request: Request, rt: RuntimeDep) -> dict[str, Any]:
    body = await request.body()
    secret = rt.settings.github_webhook_secret
    if not secret:
        raise Unauthorized(
            "GitHub webhooks are not enabled on this server",
            fix="set CONVEYOR_GITHUB_WEBHOOK_SECRET to the webhook's secret",
        )
    if not verify_github_signature(secret, body, request.headers.get("x-hub-signature-256")):
        raise Unauthorized(
            "the X-Hub-Signature-256 header is missing or does not match the body",
            fix="configure the same secret on GitHub and in CONVEYOR_GITHUB_WEBHOOK_SECRET",
        )
    event = request.headers.get("x-github-event", "")
    if event == "ping":
        return {"event": "ping", "deployments": []}
    if event != "push":
        return {"event": event, "ignored": True, "deployments": []}
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the push payload is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidInput("the push payload is not a JSON object")
    push = parse_push_event(payload)
    from starlette.concurrency import run_in_threadpool

    started = await run_in_threadpool(on_push, rt, push)
    return {"event": "push", "deployments": [d.as_json() for d in started]}
