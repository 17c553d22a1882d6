"""GitHub evidence events parsed from the payloads GitHub sends (vendored from octokit/webhooks):
the repository (name and id), the event's own time, and 400-class errors for wrong shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from conveyor.errors import InvalidInput
from conveyor.vcs import github_events as gh

FIXTURES = Path(__file__).parent.parent / "fixtures" / "github"


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.payload.json").read_text())
    return payload


HELLO = gh.Repository("codertocat/hello-world", 186853002)


def test_a_submitted_review_carries_its_repository_and_submitted_at() -> None:
    review = gh.parse_review(load("pull_request_review.submitted"))
    assert review.repository == HELLO
    assert review.sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert (review.reviewer, review.author, review.state, review.pr_number) == (
        "Codertocat",
        "Codertocat",
        "commented",
        2,
    )
    assert review.at == datetime(2019, 5, 15, 15, 20, 38, tzinfo=UTC)


def test_a_dismissal_is_dated_by_the_pull_requests_update() -> None:
    payload = load("pull_request_review.dismissed")
    payload["pull_request"]["updated_at"] = "2019-05-16T09:00:00Z"
    review = gh.parse_review(payload)
    assert review.state == "dismissed" and review.at == datetime(2019, 5, 16, 9, tzinfo=UTC)


def test_check_runs_statuses_and_pull_requests_carry_their_own_times() -> None:
    done = gh.parse_check_run(load("check_run.completed"))
    assert (done.repository, done.name, done.state) == (HELLO, "Octocoders-linter", "success")
    assert done.at == datetime(2019, 5, 15, 15, 21, 12, tzinfo=UTC)
    queued = gh.parse_check_run(load("check_run.created"))
    assert queued.state == "pending" and queued.at == datetime(2019, 5, 15, 15, 21, 12, tzinfo=UTC)
    status = gh.parse_status(load("status"))
    assert (status.repository, status.sha, status.name, status.state) == (
        HELLO,
        "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "default",
        "success",
    )
    assert status.at == datetime(2019, 5, 15, 15, 20, 55, tzinfo=UTC)
    pr = gh.parse_pull_request(load("pull_request.closed"))
    assert pr.repository == HELLO and not pr.merged and pr.merge_commit_sha is None
    assert pr.at == datetime(2019, 5, 15, 15, 21, 18, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda p: p.update(pull_request=[]), "pull_request.number"),
        (lambda p: p["pull_request"].update(number="abc"), "pull_request.number"),
        (lambda p: p["pull_request"].update(number=True), "pull_request.number"),
        (lambda p: p["review"].update(user=None), "review.user.login"),
        (lambda p: p["repository"].update(id="186853002"), "repository.id"),
        (lambda p: p["repository"].pop("full_name"), "repository.full_name"),
        (lambda p: p["review"].update(submitted_at="yesterday"), "review.submitted_at"),
        (lambda p: p["review"].update(submitted_at="2019-05-15T15:20:38"), "review.submitted_at"),
    ],
)
def test_a_wrong_shape_is_invalid_input_naming_the_field(change: Any, named: str) -> None:
    payload = load("pull_request_review.submitted")
    change(payload)
    with pytest.raises(InvalidInput, match=f"`{named}`"):
        gh.parse_review(payload)


def test_payloads_decode_from_json_or_githubs_form_encoding() -> None:
    payload = load("status")
    raw = json.dumps(payload).encode()
    assert gh.decode_payload(raw, "application/json", "status") == payload
    form = urlencode({"payload": json.dumps(payload)}).encode()
    assert gh.decode_payload(form, "application/x-www-form-urlencoded", "status") == payload
    for body, kind, message in (
        (b"\xff\xfe{}", "application/json", "not UTF-8"),
        (b"[1, 2]", "application/json", "not a JSON object"),
        (b"{", "application/json", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "not"),
        (b"other=1", "application/x-www-form-urlencoded", "application/json"),
    ):
        with pytest.raises(InvalidInput, match=message):
            gh.decode_payload(body, kind, "status")
