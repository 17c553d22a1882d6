"""Branch work Conveyor does for hotfixes and reverts: what a commit has that another lacks
(patch-id aware, like ``git cherry``), creating a branch, merging or reverting in a scratch
worktree, and publishing the result to the branch (locally and to ``origin``)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import Conflict, InvalidInput
from conveyor.vcs.git import NETWORK_TIMEOUT, Commit, GitRepo, Memo, _run

_FORMAT = "--format=%H%x00%h%x00%s%x00%an%x00%aI"

_missing: Memo[tuple[str, str, str], tuple[Commit, ...]] = Memo(1024)  # (repository, sha, serving)


def _git(path: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0) -> str:
    return _run(args, cwd=path, env=env, timeout=timeout).stdout


def _ok(path: Path, *args: str, env: Mapping[str, str] | None = None) -> bool:
    return _run(args, cwd=path, env=env, check=False).returncode == 0


def _commits(out: str) -> list[Commit]:
    return [Commit(*line.split("\0")) for line in out.splitlines() if line]


def identity_env(identity: str) -> dict[str, str]:
    """GIT_AUTHOR_*/GIT_COMMITTER_* for ``'Name <email>'``."""
    name, _, rest = identity.partition(" <")
    email = rest.rstrip(">")
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def missing_from(repo: GitRepo, sha: str, serving: str) -> list[Commit]:
    """Commits ``serving`` has that ``sha`` lacks, newest first. A commit counts as present when
    ``sha`` has it or a commit with the same patch-id (a cherry-pick); merge commits are not
    counted themselves, the commits they bring are."""
    new, old = repo.resolve(sha), repo.resolve(serving)
    key = (str(repo.path.resolve()), new, old)  # two commits: the answer cannot change
    known = _missing.get(key)
    if known is None:
        out = _git(repo.path, "log", "--no-show-signature", _FORMAT, "--cherry-pick", "--right-only", "--no-merges",
                   f"{new}...{old}", "--")  # fmt: skip
        known = _missing.put(key, tuple(_commits(out)))
    return list(known)


def own_commits(repo: GitRepo, sha: str, base: str, mainline: Sequence[str]) -> tuple[list[Commit], list[Commit]]:
    """The commits ``sha`` has over ``base``: (its own, those also on a ``mainline`` branch)."""
    new, old = repo.resolve(sha), repo.resolve(base)
    everything = _commits(_git(repo.path, "log", "--no-show-signature", _FORMAT, f"{old}..{new}", "--"))
    tips = [tip for branch in mainline if (tip := repo.branch_head(branch))]
    excluded = [f"^{tip}" for tip in tips]
    own = _commits(_git(repo.path, "log", "--no-show-signature", _FORMAT, new, f"^{old}", *excluded, "--"))
    mine = {c.sha for c in own}
    return own, [c for c in everything if c.sha not in mine]


def holders(repo: GitRepo, commits: Sequence[Commit], candidates: Sequence[str]) -> list[str]:
    """The branches among ``candidates`` that have any of ``commits``."""
    found = []
    for branch in candidates:
        tip = repo.branch_head(branch)
        if tip and any(repo.is_ancestor(c.sha, tip) for c in commits[:20]):
            found.append(branch)
    return found


def contains(repo: GitRepo, tip: str, sha: str, base: str | None = None) -> bool:
    """True when ``tip`` has ``sha``: as an ancestor, or every commit ``sha`` has over ``base``
    as a patch-equivalent commit (cherry-picked)."""
    if repo.is_ancestor(sha, tip):
        return True
    if base is None or not repo.is_ancestor(base, sha):
        return False
    lacking = {c.sha for c in missing_from(repo, tip, sha)}
    return not any(c.sha in lacking for c in _since(repo, base, sha))


def _since(repo: GitRepo, base: str, sha: str) -> list[Commit]:
    return _commits(_git(repo.path, "log", "--no-show-signature", "--no-merges", _FORMAT, f"{base}..{sha}", "--"))


def check_branch_name(repo: GitRepo, name: str) -> str:
    plain = name and not name.startswith("-") and not any(c in name for c in "\0\n\r")
    if not plain or not _ok(repo.path, "check-ref-format", "--branch", name):
        raise InvalidInput(f"{name!r} is not a valid branch name", fix="use letters, digits, '-', '_' and '/'")
    return name


def create_branch(repo: GitRepo, name: str, sha: str) -> bool:
    """Create branch ``name`` at ``sha``: True if made, False if it is already there; Conflict if
    it exists on another commit."""
    check_branch_name(repo, name)
    commit = repo.resolve(sha)
    existing = repo.branch_head(name)
    if existing == commit:
        if _ok(repo.path, "rev-parse", "--verify", "--quiet", f"refs/heads/{name}"):
            return False
        _git(repo.path, "update-ref", f"refs/heads/{name}", commit)
        return True
    if existing is not None:
        raise Conflict(
            f"branch {name!r} already exists on {existing[:12]}, not on {commit[:12]}",
            fix="pick another name, or continue on that branch",
        )
    _git(repo.path, "update-ref", f"refs/heads/{name}", commit, "0" * 40)
    return True


def push_branch(repo: GitRepo, name: str, sha: str) -> bool:
    """Push ``sha`` to ``origin``'s branch ``name`` (fast-forward only). False without an origin;
    Conflict when origin refuses (it moved on)."""
    if repo.origin_url() is None:
        return False
    args = ("-c", "remote.origin.mirror=false", "push", "origin", f"{repo.resolve(sha)}:refs/heads/{name}")
    proc = _run(args, cwd=repo.path, timeout=NETWORK_TIMEOUT, check=False)
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        raise Conflict(f"origin refused {name}: {detail}", fix=f"fetch {name}, merge, and push it by hand")
    return True


@dataclass(frozen=True)
class Outcome:
    """What a merge or revert in a scratch worktree came to."""

    sha: str | None  # the new commit, or None when nothing was made
    conflicts: tuple[str, ...] = ()


class Scratch:
    """A detached worktree of ``repo`` at ``sha`` under ``path``, removed on exit."""

    def __init__(self, repo: GitRepo, path: Path, sha: str) -> None:
        self.repo, self.path, self.sha = repo, Path(path), sha

    def __enter__(self) -> Path:
        self.repo.add_worktree(self.path, self.sha)
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.repo.remove_worktree(self.path)
        shutil.rmtree(self.path, ignore_errors=True)


def _conflicts(path: Path) -> tuple[str, ...]:
    return tuple(sorted(_git(path, "diff", "--name-only", "--diff-filter=U").split()))


def merge(repo: GitRepo, scratch: Path, onto: str, sha: str, message: str, identity: str) -> Outcome:
    """Merge ``sha`` into ``onto`` (``--no-ff``) in a scratch worktree; conflicts abort it."""
    env = identity_env(identity)
    with Scratch(repo, scratch, onto) as tree:
        if _ok(tree, "merge", "--no-ff", "--no-edit", "-m", message, sha, env=env):
            return Outcome(_git(tree, "rev-parse", "HEAD").strip())
        found = _conflicts(tree)
        _run(("merge", "--abort"), cwd=tree, check=False)
        return Outcome(None, found or ("(git could not merge)",))


def revert(repo: GitRepo, scratch: Path, onto: str, commits: Sequence[tuple[str, bool]], identity: str) -> Outcome:
    """Revert ``commits`` (sha, is_merge), newest first, on top of ``onto``: ``-m 1`` for a merge."""
    env = identity_env(identity)
    with Scratch(repo, scratch, onto) as tree:
        for sha, is_merge in commits:
            args = ["revert", "--no-edit", *(["-m", "1"] if is_merge else []), sha]
            if not _ok(tree, *args, env=env):
                found = _conflicts(tree)
                _run(("revert", "--abort"), cwd=tree, check=False)
                return Outcome(None, found or ("(git could not revert)",))
        head = _git(tree, "rev-parse", "HEAD").strip()
        return Outcome(head if head != repo.resolve(onto) else None)


def is_merge(repo: GitRepo, sha: str) -> bool:
    return len(_git(repo.path, "rev-list", "--parents", "-n", "1", repo.resolve(sha)).split()) > 2


def first_parent_commits(repo: GitRepo, older: str, newer: str) -> list[Commit]:
    """``newer``'s commits over ``older`` along first parents, newest first."""
    span = f"{repo.resolve(older)}..{repo.resolve(newer)}"
    return _commits(_git(repo.path, "log", "--no-show-signature", "--first-parent", _FORMAT, span, "--"))


def _checked_out(repo: GitRepo, branch: str) -> Path | None:
    """The work tree where ``branch`` is checked out, if any."""
    current: Path | None = None
    for line in _git(repo.path, "worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            current = Path(line.removeprefix("worktree "))
        elif line == f"branch refs/heads/{branch}":
            return current
    return None


def publish(repo: GitRepo, branch: str, sha: str, old: str) -> bool:
    """Move ``branch`` from ``old`` to ``sha`` (a descendant): its local ref (a checkout of it is
    fast-forwarded, and refused with local changes) and ``origin``'s. Returns True if pushed."""
    tree = _checked_out(repo, branch)
    if tree is not None and tree.exists():
        if _git(tree, "status", "--porcelain", "--untracked-files=no").strip():
            raise Conflict(
                f"{branch} is checked out with uncommitted changes in {tree}",
                fix=f"commit or stash them, then merge {sha[:12]} into {branch} there",
            )
        _git(tree, "merge", "--ff-only", "--quiet", sha)
    elif _ok(repo.path, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"):
        _git(repo.path, "update-ref", f"refs/heads/{branch}", sha, old)
    pushed = push_branch(repo, branch, sha)
    if pushed and tree is None:
        repo.fetch()
    return pushed
