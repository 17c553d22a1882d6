"""reviews: N approving reviews of the exact commit from people other than its author; the latest
review of each reviewer counts; changes requested block; a hotfix needs the hotfix count."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.gates.specs import NOW, SHA, evidence, production, service

from conveyor.domain.evidence import Review
from conveyor.gates.reviews import Reviews

GATE = Reviews()


def review(reviewer: str, state: str = "approved", minutes: int = 0, author: str = "dev") -> Review:
    return Review(reviewer=reviewer, author=author, state=state, at=NOW + timedelta(minutes=minutes))


def test_off_unless_configured() -> None:
    assert not GATE.applies(service(), production(service()))
    assert not GATE.applies(service("reviews: 0\n"), production(service("reviews: 0\n")))
    assert GATE.applies(service("reviews: 1\n"), production(service("reviews: 1\n")))


@pytest.mark.parametrize(
    ("needed", "reviews", "passed", "approvers", "reason"),
    [
        (2, (), False, [], f"2 approving review(s) needed on {SHA[:12]}, 0 so far"),
        (2, (review("ann"),), False, ["ann"], f"2 approving review(s) needed on {SHA[:12]}, 1 so far (ann)"),
        (2, (review("ann"), review("bob")), True, ["ann", "bob"], "2 approving review(s): ann, bob"),
        (1, (review("ann"), review("ann", minutes=1)), True, ["ann"], "1 approving review(s): ann"),
        (2, (review("ann"), review("ann", minutes=1)), False, ["ann"], None),  # one person counts once
        (1, (review("ann", "commented"),), False, [], None),  # a comment is not a review verdict
        (
            1,
            (review("dev", author="dev"),),
            False,
            [],
            f"1 approving review(s) needed on {SHA[:12]}, 0 so far; the author's own approval does not count (dev)",
        ),
        (
            1,
            (review("ann"), review("bob", "changes_requested")),
            False,
            ["ann"],
            f"changes requested by bob on {SHA[:12]}",
        ),
        (1, (review("bob", "changes_requested"), review("bob", minutes=1)), True, ["bob"], None),  # resolved later
        (1, (review("bob"), review("bob", "changes_requested", minutes=1)), False, [], None),  # withdrawn later
        (1, (review("bob"), review("bob", "dismissed", minutes=1)), False, [], None),  # a dismissed approval is gone
        (1, (review("bob", minutes=1), review("bob", "dismissed")), True, ["bob"], None),  # order is by time
    ],
)
def test_reviews_table(
    needed: int, reviews: tuple[Review, ...], passed: bool, approvers: list[str], reason: str | None
) -> None:
    spec = service(f"reviews: {needed}\n")
    result = GATE.evaluate(spec, production(spec), evidence(reviews=reviews))
    assert (result.passed, result.details["approvers"], result.details["needed"]) == (passed, approvers, needed)
    if reason is not None:
        assert result.reason == reason


@pytest.mark.parametrize(
    ("hotfix_config", "hotfix", "needed"),
    [
        ("hotfix: {reviews: 1}\n", True, 1),  # a hotfix ref needs the hotfix policy's count
        ("hotfix: {reviews: 1}\n", False, 3),
        ("hotfix: {reviews: 5}\n", True, 3),  # never more than the environment's own count
        ("", True, 3),  # no hotfix policy: the environment's count
    ],
)
def test_hotfix_count(hotfix_config: str, hotfix: bool, needed: int) -> None:
    spec = service("reviews: 3\n", extra=hotfix_config)
    result = GATE.evaluate(spec, production(spec), evidence(hotfix=hotfix, reviews=(review("ann"),)))
    assert result.details["needed"] == needed and result.details["hotfix"] is hotfix
    assert result.passed is (needed <= 1)
