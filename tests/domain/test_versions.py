"""Versions: parsing tags, bumping, choosing the next release version."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.domain.versions import BumpKind, Version, next_version

parts = st.integers(min_value=0, max_value=10_000)
versions = st.builds(Version, parts, parts, parts)
kinds = st.sampled_from(["major", "minor", "patch"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v1.2.3", Version(1, 2, 3)),
        ("v0.0.0", Version(0, 0, 0)),
        ("v10.20.300", Version(10, 20, 300)),
    ],
)
def test_parse_accepts_plain_versions(text: str, expected: Version) -> None:
    assert Version.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "1.2.3",
        "v1.2",
        "v1.2.3.4",
        "v1.2.3-rc1",
        "v1.2.3+build",
        "V1.2.3",
        "v01.2.3",
        "v1.2.x",
        "",
        "v",
        " v1.2.3",
        "v1.2.3\n",
        "vv1.2.3",
        "v-1.2.3",
        "v\u0661.2.3",  # an Arabic-Indic digit one
    ],
)
def test_parse_rejects_anything_else(text: str) -> None:
    assert Version.parse(text) is None


def test_parse_with_other_prefix() -> None:
    assert Version.parse("shop-v2.0.1", prefix="shop-v") == Version(2, 0, 1)
    assert Version.parse("1.2.3", prefix="") == Version(1, 2, 3)
    assert Version.parse("v1.2.3", prefix="shop-v") is None


def test_ordering_is_numeric() -> None:
    assert Version(1, 10, 0) > Version(1, 9, 9)
    assert Version(2, 0, 0) > Version(1, 99, 99)
    assert sorted([Version(0, 10, 0), Version(0, 2, 0), Version(0, 2, 1)]) == [
        Version(0, 2, 0),
        Version(0, 2, 1),
        Version(0, 10, 0),
    ]


def test_bump() -> None:
    v = Version(1, 4, 7)
    assert v.bump("patch") == Version(1, 4, 8)
    assert v.bump("minor") == Version(1, 5, 0)
    assert v.bump("major") == Version(2, 0, 0)


def test_bump_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="huge"):
        Version(1, 0, 0).bump("huge")  # type: ignore[arg-type]


def test_negative_parts_are_refused() -> None:
    with pytest.raises(ValueError):
        Version(1, -1, 0)


def test_tag_and_str() -> None:
    assert Version(1, 4, 0).tag() == "v1.4.0"
    assert Version(1, 4, 0).tag(prefix="shop-") == "shop-1.4.0"
    assert str(Version(1, 4, 0)) == "1.4.0"


def test_next_version_from_nothing() -> None:
    assert next_version([], "minor") == Version(0, 1, 0)
    assert next_version([], "patch") == Version(0, 0, 1)
    assert next_version([], "major") == Version(1, 0, 0)


def test_next_version_bumps_the_highest() -> None:
    assert next_version([Version(0, 1, 0)], "minor") == Version(0, 2, 0)
    existing = [Version(1, 2, 3), Version(1, 10, 0), Version(0, 99, 0)]
    assert next_version(existing, "patch") == Version(1, 10, 1)
    assert next_version(iter(existing), "major") == Version(2, 0, 0)


@given(st.lists(versions, max_size=20), kinds)
def test_next_version_is_greater_than_every_existing_one(existing: list[Version], kind: BumpKind) -> None:
    new = next_version(existing, kind)
    assert all(new > old for old in existing)
    assert new not in existing


@given(versions, kinds)
def test_bump_is_greater_and_tag_round_trips(version: Version, kind: BumpKind) -> None:
    assert version.bump(kind) > version
    assert Version.parse(version.tag()) == version
    assert Version.parse(version.tag("rel-"), prefix="rel-") == version
