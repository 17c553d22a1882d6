"""GitHub webhook events that carry gate evidence: reviews, merged pull requests, check runs and
commit statuses, parsed into plain values. Missing fields raise InvalidInput naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.errors import InvalidInput


def _get(payload: Mapping[str, Any], path: str) -> Any:
    value: Any = payload
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise InvalidInput(f"the GitHub event has no `{path}`", fix="send the event GitHub sends, unchanged")
        value = value[key]
    return value


@dataclass(frozen=True)
class ReviewEvent:
    repository: str
    pr_number: int
    sha: str  # the commit the review was made on
    reviewer: str
    author: str
    state: str


@dataclass(frozen=True)
class PullRequestEvent:
    repository: str
    number: int
    head_sha: str
    merge_commit_sha: str | None
    merged: bool
    author: str


@dataclass(frozen=True)
class CheckEvent:
    sha: str
    name: str
    state: str  # success | failure | pending
    url: str | None


def parse_review(payload: Mapping[str, Any]) -> ReviewEvent:
    state = str(_get(payload, "review.state")).lower()
    if _get(payload, "action") == "dismissed":
        state = "dismissed"
    return ReviewEvent(
        repository=str(_get(payload, "repository.full_name")),
        pr_number=int(_get(payload, "pull_request.number")),
        sha=str(_get(payload, "review.commit_id")),
        reviewer=str(_get(payload, "review.user.login")),
        author=str(_get(payload, "pull_request.user.login")),
        state=state,
    )


def parse_pull_request(payload: Mapping[str, Any]) -> PullRequestEvent:
    pr = _get(payload, "pull_request")
    merged = bool(pr.get("merged"))
    return PullRequestEvent(
        repository=str(_get(payload, "repository.full_name")),
        number=int(_get(payload, "pull_request.number")),
        head_sha=str(_get(payload, "pull_request.head.sha")),
        merge_commit_sha=str(pr["merge_commit_sha"]) if merged and pr.get("merge_commit_sha") else None,
        merged=merged,
        author=str(_get(payload, "pull_request.user.login")),
    )


_CONCLUSIONS = {"success": "success", "neutral": "success", "skipped": "success"}


def parse_check_run(payload: Mapping[str, Any]) -> CheckEvent:
    status = str(_get(payload, "check_run.status"))
    conclusion = payload["check_run"].get("conclusion")
    state = _CONCLUSIONS.get(str(conclusion), "failure") if status == "completed" else "pending"
    return CheckEvent(
        str(_get(payload, "check_run.head_sha")),
        str(_get(payload, "check_run.name")),
        state,
        payload["check_run"].get("html_url"),
    )


def parse_status(payload: Mapping[str, Any]) -> CheckEvent:
    raw = str(_get(payload, "state"))
    state = {"success": "success", "pending": "pending"}.get(raw, "failure")
    return CheckEvent(str(_get(payload, "sha")), str(_get(payload, "context")), state, payload.get("target_url"))
