"""GitHub webhook events that carry gate evidence: reviews, merged pull requests, check runs and
commit statuses, parsed into plain values with the repository they came from and the event's own
time. A missing field, or one of the wrong type, raises InvalidInput naming the field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from conveyor.errors import InvalidInput

_FIX = "send the event GitHub sends, unchanged"


def _get(payload: Mapping[str, Any], path: str, kind: type | tuple[type, ...] = str, optional: bool = False) -> Any:
    value: Any = payload
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            if optional:
                return None
            raise InvalidInput(f"the GitHub event has no `{path}`", fix=_FIX)
        value = value[key]
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidInput(f"`{path}` in the GitHub event should be a {want}, not {type(value).__name__}", fix=_FIX)
    return value


def _time(payload: Mapping[str, Any], path: str) -> datetime | None:
    raw = _get(payload, path, optional=True)
    if raw is None:
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"`{path}` in the GitHub event is not an ISO-8601 time: {raw[:40]!r}", fix=_FIX) from None
    if at.utcoffset() is None:
        raise InvalidInput(f"`{path}` in the GitHub event has no time zone: {raw[:40]!r}", fix=_FIX)
    return at


@dataclass(frozen=True)
class Repository:
    full_name: str  # lower case: GitHub names are case-insensitive
    id: int


def repository_of(payload: Mapping[str, Any]) -> Repository:
    return Repository(_get(payload, "repository.full_name").lower(), _get(payload, "repository.id", int))


@dataclass(frozen=True)
class ReviewEvent:
    repository: Repository
    pr_number: int
    sha: str  # the commit the review was made on
    reviewer: str
    author: str
    state: str
    at: datetime | None  # submitted_at (for a dismissal: the pull request's updated_at)


@dataclass(frozen=True)
class PullRequestEvent:
    repository: Repository
    number: int
    head_sha: str
    merge_commit_sha: str | None
    merged: bool
    author: str
    at: datetime | None  # updated_at


@dataclass(frozen=True)
class CheckEvent:
    repository: Repository
    sha: str
    name: str
    state: str  # success | failure | pending
    url: str | None
    at: datetime | None  # check run: completed_at (else started_at); status: updated_at


def parse_review(payload: Mapping[str, Any]) -> ReviewEvent:
    state = _get(payload, "review.state").lower()
    at = _time(payload, "review.submitted_at")
    if _get(payload, "action") == "dismissed":
        state = "dismissed"
        at = _time(payload, "pull_request.updated_at") or at
    return ReviewEvent(
        repository=repository_of(payload),
        pr_number=_get(payload, "pull_request.number", int),
        sha=_get(payload, "review.commit_id"),
        reviewer=_get(payload, "review.user.login"),
        author=_get(payload, "pull_request.user.login"),
        state=state,
        at=at,
    )


def parse_pull_request(payload: Mapping[str, Any]) -> PullRequestEvent:
    merged = bool(_get(payload, "pull_request.merged", bool, optional=True))
    merge_sha = _get(payload, "pull_request.merge_commit_sha", optional=True)
    return PullRequestEvent(
        repository=repository_of(payload),
        number=_get(payload, "pull_request.number", int),
        head_sha=_get(payload, "pull_request.head.sha"),
        merge_commit_sha=merge_sha if merged and merge_sha else None,
        merged=merged,
        author=_get(payload, "pull_request.user.login"),
        at=_time(payload, "pull_request.updated_at"),
    )


_CONCLUSIONS = {"success": "success", "neutral": "success", "skipped": "success"}


def parse_check_run(payload: Mapping[str, Any]) -> CheckEvent:
    status = _get(payload, "check_run.status")
    conclusion = _get(payload, "check_run.conclusion", optional=True)
    state = _CONCLUSIONS.get(str(conclusion), "failure") if status == "completed" else "pending"
    return CheckEvent(
        repository_of(payload),
        _get(payload, "check_run.head_sha"),
        _get(payload, "check_run.name"),
        state,
        _get(payload, "check_run.html_url", optional=True),
        _time(payload, "check_run.completed_at") or _time(payload, "check_run.started_at"),
    )


def parse_status(payload: Mapping[str, Any]) -> CheckEvent:
    raw = _get(payload, "state")
    state = {"success": "success", "pending": "pending"}.get(raw, "failure")
    return CheckEvent(
        repository_of(payload),
        _get(payload, "sha"),
        _get(payload, "context"),
        state,
        _get(payload, "target_url", optional=True),
        _time(payload, "updated_at") or _time(payload, "created_at"),
    )


def decode_payload(body: bytes, content_type: str, event: str) -> dict[str, Any]:
    """The event's JSON object, from an ``application/json`` body or GitHub's form encoding
    (``application/x-www-form-urlencoded`` with the JSON in a ``payload`` field)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"the {event} payload is not UTF-8", fix=_FIX) from None
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        fields = parse_qs(text, keep_blank_values=True)
        if len(fields.get("payload", [])) != 1:
            raise InvalidInput(
                f"the form-encoded {event} delivery has no single `payload` field",
                fix="set the webhook's content type to application/json on GitHub",
            )
        text = fields["payload"][0]
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"the {event} payload is not JSON: {str(exc)[:200]}", fix=_FIX) from None
    if not isinstance(payload, dict):
        raise InvalidInput(f"the {event} payload is not a JSON object", fix=_FIX)
    return payload
