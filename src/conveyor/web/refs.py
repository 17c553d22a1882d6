"""The commits and tags the deploy form offers: heads of the followed branches, version tags, and
recent commits of each followed branch, filtered by what the user types."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConveyorError
from conveyor.spec import ServiceSpec
from conveyor.vcs.git import Commit, GitRepo

COMMITS_PER_BRANCH = 25


@dataclass(frozen=True)
class RefOption:
    value: str  # what is deployed: a branch name, a tag, or a full SHA
    kind: str  # branch | tag | commit
    sha: str
    subject: str
    author: str

    def matches(self, text: str) -> bool:
        text = text.strip().lower()
        return not text or any(text in f.lower() for f in (self.value, self.sha, self.subject, self.author))


def followed_branches(spec: ServiceSpec) -> list[str]:
    """Branches some environment follows, in the order of the environments, each once."""
    return list(dict.fromkeys(e.branch for e in spec.environments.values() if e.branch))


def branch_commits(repo: GitRepo, spec: ServiceSpec, limit: int = COMMITS_PER_BRANCH) -> dict[str, list[Commit]]:
    out: dict[str, list[Commit]] = {}
    for branch in followed_branches(spec):
        try:
            out[branch] = repo.commits(branch, limit)
        except ConveyorError:  # a followed branch that does not exist (yet)
            out[branch] = []
    return out


def ref_options(repo_path: str, spec: ServiceSpec, text: str = "", limit: int = 60) -> list[RefOption]:
    repo = GitRepo(Path(repo_path))
    history = branch_commits(repo, spec)
    known = {c.sha: c for commits in history.values() for c in commits}
    options: list[RefOption] = []
    for branch, commits in history.items():
        if commits:
            head = commits[0]
            options.append(RefOption(branch, "branch", head.sha, head.subject, head.author))
    for _version, tag, sha in reversed(repo.version_tags()):
        c = known.get(sha)
        options.append(RefOption(tag, "tag", sha, c.subject if c else "", c.author if c else ""))
    seen: set[str] = set()
    for commits in history.values():
        for c in commits:
            if c.sha not in seen:
                seen.add(c.sha)
                options.append(RefOption(c.sha, "commit", c.sha, c.subject, c.author))
    found = [o for o in options if o.matches(text)][:limit]
    if not found and text.strip():
        try:  # any other ref git knows: a SHA, an older tag, another branch
            sha = repo.resolve(text.strip())
        except ConveyorError:
            return []
        subject = repo.commit_message(sha).split("\n", 1)[0]
        found = [RefOption(text.strip(), "ref", sha, subject, "")]
    return found
