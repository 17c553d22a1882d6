"""What makes a commit a hotfix, as plain values (docs/hotfix.md). Pure: no I/O.

A hotfix is decided by ancestry, never by a branch name: its base is the release serving in the
hotfix environment (production), and over that base it has at least one and at most
``max_commits`` commits of its own, none of them taken from a mainline branch (the
``merge_back`` branches and the branches environments follow). Its version is the first free
patch version above the base's: a fix on v0.3.0 is v0.3.1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from conveyor.domain.versions import Version


@dataclass(frozen=True)
class HotfixFacts:
    """A commit measured against the release serving in the hotfix environment."""

    environment: str  # where the base serves
    sha: str
    base_sha: str | None  # None: nothing serves there
    base_version: str | None
    based: bool  # the base is an ancestor of the commit
    own: tuple[str, ...] = ()  # short shas of its own commits over the base
    borrowed: tuple[str, ...] = ()  # short shas over the base that are also on a mainline branch
    borrowed_from: tuple[str, ...] = ()  # the mainline branches checked
    max_commits: int = 10
    reviews: int | None = None  # approving reviews a hotfix needs in this environment, if a gate asks
    claimed: bool = False  # the ref names a hotfix branch (branch_prefix)
    ref: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def qualifies(self) -> bool:
        return self.reason_not is None

    @property
    def reason_not(self) -> str | None:
        """Why the commit is not a hotfix, or None when it is one."""
        if self.base_sha is None:
            return f"nothing serves in {self.environment} yet, so there is no release to fix"
        base = self.base_version or self.base_sha[:12]
        if self.sha == self.base_sha:
            return f"it is {base} itself, which {self.environment} serves"
        if not self.based:
            return f"its base is not {base}, which {self.environment} serves"
        if self.borrowed:
            shown = ", ".join(self.borrowed[:5]) + (" …" if len(self.borrowed) > 5 else "")
            branches = " or ".join(self.borrowed_from) or "a mainline branch"
            return (
                f"it carries {len(self.borrowed)} commit(s) over {base} from {branches} ({shown}); "
                "a hotfix has only its own commits on top of the release"
            )
        if not self.own:
            return f"it has no commits of its own over {base}"
        if len(self.own) > self.max_commits:
            return (
                f"it has {len(self.own)} commits over {base}; a hotfix has at most {self.max_commits} "
                "(hotfix.max_commits)"
            )
        return None

    def summary(self) -> str:
        base = self.base_version or (self.base_sha[:12] if self.base_sha else "nothing")
        if self.qualifies:
            needed = f"; {self.reviews} approving review(s) needed" if self.reviews is not None else ""
            return f"a hotfix of {base} ({self.environment}): {len(self.own)} commit(s) of its own{needed}"
        return f"not a hotfix: {self.reason_not}"

    def as_json(self) -> dict[str, Any]:
        return {
            "hotfix": self.qualifies,
            "environment": self.environment,
            "base": self.base_version,
            "base_sha": self.base_sha,
            "commits": len(self.own),
            "max_commits": self.max_commits,
            "borrowed": list(self.borrowed),
            "reviews_needed": self.reviews if self.qualifies else None,
            "claimed": self.claimed,
            "reason": self.reason_not,
        }


def hotfix_version(base: Version, taken: Iterable[Version]) -> Version:
    """The first patch version above ``base`` that no release has yet: v0.3.0 -> v0.3.1."""
    used = set(taken)
    candidate = base.bump("patch")
    while candidate in used:
        candidate = candidate.bump("patch")
    return candidate


def claim_refusal(facts: HotfixFacts, start_command: str) -> str | None:
    """The refusal for a ref that names a hotfix branch but is not a hotfix, else None."""
    if not facts.claimed or facts.qualifies:
        return None
    return f"{facts.ref} is not a hotfix: {facts.reason_not}; make a proper hotfix branch with `{start_command}`"
