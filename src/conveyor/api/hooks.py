"""Inbound webhooks. GitHub push events are verified with X-Hub-Signature-256 before anything
is read from them; a bad or missing signature gets 401 and records nothing."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from conveyor.api.deps import RuntimeDep
from conveyor.engine import evidence_intake as intake
from conveyor.engine.runtime import Runtime
from conveyor.engine.triggers import on_push
from conveyor.errors import InvalidInput, Unauthorized
from conveyor.vcs import github_events as gh
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
    if event not in HANDLED:
        return {"event": event, "ignored": True, "deployments": []}
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the {event} payload is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidInput(f"the {event} payload is not a JSON object")
    if event == "push":
        started = await run_in_threadpool(on_push, rt, parse_push_event(payload))
        return {"event": "push", "deployments": [d.as_json() for d in started]}
    await run_in_threadpool(_evidence, rt, event, payload)
    return {"event": event, "deployments": []}


HANDLED = ("push", "pull_request_review", "pull_request", "check_run", "status")


def _evidence(rt: Runtime, event: str, payload: dict[str, Any]) -> None:
    """Reviews, merges and checks from GitHub: recorded as evidence for the gates."""
    if event == "pull_request_review":
        review = gh.parse_review(payload)
        intake.report_review(
            rt,
            "github",
            sha=review.sha,
            reviewer=review.reviewer,
            author=review.author,
            state=review.state,
            source="github",
            repository=review.repository,
            pr_number=review.pr_number,
        )
    elif event == "pull_request":
        pr = gh.parse_pull_request(payload)
        intake.record_merge(rt, pr.repository, pr.number, pr.head_sha, pr.merge_commit_sha, pr.author)
    else:
        check = gh.parse_check_run(payload) if event == "check_run" else gh.parse_status(payload)
        intake.report_check(rt, "github", check.sha, check.name, check.state, check.url)
