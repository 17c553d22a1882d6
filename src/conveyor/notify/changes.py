"""The changes a release brings: the commits between the previous release and the new one, with
the pull request numbers and ticket keys their subjects name."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConveyorError
from conveyor.store.records import ServiceRecord
from conveyor.vcs.git import GitRepo

_MERGE = re.compile(r"^Merge pull request #(\d+)\b")
_PR = re.compile(r"\(#(\d+)\)\s*$")
_TICKET = re.compile(r"\b([A-Z][A-Z0-9]{1,9}-\d+)\b")


@dataclass(frozen=True)
class Change:
    sha: str
    subject: str
    pr: int | None
    tickets: tuple[str, ...]


def parse(sha: str, subject: str, body: str = "") -> Change:
    """A commit as a change: a merge commit of a pull request is named by the PR's title."""
    pr: int | None = None
    if merge := _MERGE.match(subject):
        pr = int(merge.group(1))
        subject = next((line.strip() for line in body.splitlines() if line.strip()), subject)
    elif squash := _PR.search(subject):
        pr = int(squash.group(1))
    tickets = tuple(dict.fromkeys(_TICKET.findall(subject)))
    return Change(sha, subject, pr, tickets)


def changes_between(service: ServiceRecord, older: str | None, newer: str, limit: int) -> list[Change]:
    """Newest first; empty when the repository cannot say (a missing commit is not a failure)."""
    repo = GitRepo(Path(service.repo_path))
    try:
        commits = repo.commits_between(older, newer, limit)
        return [
            parse(c.sha, c.subject, repo.commit_message(c.sha).partition("\n")[2] if _MERGE.match(c.subject) else "")
            for c in commits
        ]
    except ConveyorError:
        return []
