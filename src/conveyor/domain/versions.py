"""Release versions: ``vMAJOR.MINOR.PATCH`` tags and how the next one is chosen."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

BumpKind = Literal["major", "minor", "patch"]

_CORE = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")


@dataclass(frozen=True, order=True)
class Version:
    """A semantic version without pre-release or build parts, ordered numerically."""

    major: int
    minor: int
    patch: int

    def __post_init__(self) -> None:
        if min(self.major, self.minor, self.patch) < 0:
            raise ValueError(f"version parts must not be negative: {self}")

    @classmethod
    def parse(cls, text: str, prefix: str = "v") -> Version | None:
        """``'v1.2.3'`` -> ``Version(1, 2, 3)``; anything else (``'1.2'``, ``'v1.2.3-rc1'``) -> None."""
        if not text.startswith(prefix):
            return None
        match = _CORE.fullmatch(text[len(prefix) :])
        if match is None:
            return None
        major, minor, patch = (int(part) for part in match.groups())
        return cls(major, minor, patch)

    def bump(self, kind: BumpKind) -> Version:
        """The next version of that kind: minor resets patch, major resets both."""
        if kind == "major":
            return Version(self.major + 1, 0, 0)
        if kind == "minor":
            return Version(self.major, self.minor + 1, 0)
        if kind == "patch":
            return Version(self.major, self.minor, self.patch + 1)
        raise ValueError(f"unknown bump kind {kind!r}; use major, minor or patch")

    def tag(self, prefix: str = "v") -> str:
        """The git tag name, e.g. ``'v1.2.3'``."""
        return f"{prefix}{self}"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


ZERO = Version(0, 0, 0)


def next_version(existing: Iterable[Version], kind: BumpKind) -> Version:
    """Bump the highest existing version, or 0.0.0 when there is none."""
    return max(existing, default=ZERO).bump(kind)
