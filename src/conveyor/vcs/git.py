"""A small wrapper around the ``git`` command line: refs, version tags, worktrees, mirrors."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from conveyor.domain.versions import Version
from conveyor.errors import Conflict, ConveyorError, InvalidInput

LOCAL_TIMEOUT = 60.0
NETWORK_TIMEOUT = 600.0

# Variables that would point git at some other repository than the one we name.
_LOCATING_VARS = {
    *("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR"),
    *("GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_PREFIX", "GIT_CEILING_DIRECTORIES"),
}
_COMMITTER = {"GIT_COMMITTER_NAME": "Conveyor", "GIT_COMMITTER_EMAIL": "conveyor@localhost"}

log = logging.getLogger(__name__)

# How many git processes this process ran, by subcommand (e.g. "rev-parse --verify"). Read by the
# tests that keep a deployment's git work bounded; a debug line per call gives its duration.
calls: Counter[str] = Counter()
_calls_lock = threading.Lock()


def _subcommand(args: Sequence[str]) -> str:
    """The subcommand of ``git ARGS`` (after any ``-c k=v``), with its first option if any."""
    rest = list(args)
    while len(rest) >= 2 and rest[0] == "-c":
        rest = rest[2:]
    if not rest:
        return ""
    if len(rest) > 1 and (rest[0] == "worktree" or (rest[1].startswith("--") and "=" not in rest[1])):
        return f"{rest[0]} {rest[1]}"
    return rest[0]


K = TypeVar("K")
V = TypeVar("V")
_MEMOS: list[Memo[Any, Any]] = []


class Memo(Generic[K, V]):
    """A bounded, process-wide memo for answers git gives that cannot change: keyed by commit SHAs
    and paths, never by a ref name that can move (a branch, a tag)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()  # steps and requests run in threads
        _MEMOS.append(self)

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> V:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# a tag name git's check-ref-format surely accepts (v1.2.3, release-7): no call needed for it
_PLAIN_TAG = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*")
_commits_seen: Memo[tuple[str, str], bool] = Memo()  # (repository, full SHA) -> a commit there
_ancestry: Memo[tuple[str, str, str], bool] = Memo()  # (repository, older, newer) -> is_ancestor
_common_dirs: Memo[str, Path] = Memo(256)  # repository -> its git common dir


def forget_memos() -> None:
    """Drop what this process learnt from git (for tests that rewrite a repository in place)."""
    for memo in _MEMOS:
        memo.clear()


@dataclass(frozen=True)
class Commit:
    """One commit as shown in a branch history."""

    sha: str
    short: str
    subject: str
    author: str
    authored_at: str  # ISO-8601 with offset


def _run(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = LOCAL_TIMEOUT,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``git ARGS`` in ``cwd`` (never in a repository above it).

    With ``check``, a non-zero exit raises ConveyorError naming the command and git's stderr.
    """
    full_env = {k: v for k, v in os.environ.items() if k not in _LOCATING_VARS}
    full_env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", **(env or {}))
    full_env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    command = ["git", "-c", "core.quotepath=off"]
    if cwd is not None:
        full_env["GIT_CEILING_DIRECTORIES"] = str(cwd.resolve().parent)
        command += ["-C", str(cwd)]
    started = time.perf_counter()
    with _calls_lock:
        calls[_subcommand(args)] += 1
    try:
        proc = subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=full_env,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ConveyorError("the git program was not found", fix="install git and put it on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise ConveyorError(f"{_shown(args, cwd)} timed out after {timeout:g}s") from exc
    finally:
        log.debug("%s: %.1f ms", _shown(args, cwd), (time.perf_counter() - started) * 1000)
    if check and proc.returncode != 0:
        raise _failure(args, cwd, proc)
    return proc


def _shown(args: Sequence[str], cwd: Path | None) -> str:
    return f"`git {' '.join(args)}`" + (f" in {cwd}" if cwd is not None else "")


def _failure(args: Sequence[str], cwd: Path | None, proc: subprocess.CompletedProcess[str]) -> ConveyorError:
    """The error for a failed git command: the command, where, and what git said."""
    detail = proc.stderr.strip() or f"exit status {proc.returncode}"
    return ConveyorError(f"{_shown(args, cwd)} failed: {detail}")


def _plain_ref(ref: str, what: str = "ref") -> str:
    if not ref or ref.startswith("-") or "\n" in ref or "\0" in ref:
        raise InvalidInput(f"invalid {what} {ref!r}", fix="use a branch, tag or commit SHA")
    return ref


class GitRepo:
    """A git repository on disk (a work tree or a bare mirror), driven through the git CLI."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._key = str(self.path.resolve())

    def _proc(
        self, *args: str, timeout: float = LOCAL_TIMEOUT, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run git here and return the finished process, whatever its exit status."""
        return _run(args, cwd=self.path, timeout=timeout, env=env, check=False)

    def _git(self, *args: str, timeout: float = LOCAL_TIMEOUT) -> str:
        """Run git here and return its stdout; ConveyorError if it fails."""
        return _run(args, cwd=self.path, timeout=timeout).stdout

    @staticmethod
    def is_repo(path: Path) -> bool:
        """True when ``path`` itself is a git repository (work tree top or bare), not merely inside one."""
        return Path(path).is_dir() and _run(["rev-parse", "--git-dir"], cwd=Path(path), check=False).returncode == 0

    # --- refs -------------------------------------------------------------------------------

    def _peel(self, ref: str) -> str | None:
        proc = self._proc("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        return proc.stdout.strip() if proc.returncode == 0 else None

    def resolve(self, ref: str) -> str:
        """The full SHA of the commit ``ref`` names; InvalidInput when there is none.

        A full SHA already found to be a commit here is not asked again (commits are immutable);
        a branch or tag name always is."""
        if _FULL_SHA.fullmatch(ref) and _commits_seen.get((self._key, ref)):
            return ref
        sha = self._peel(_plain_ref(ref))
        if sha is None:
            raise InvalidInput(
                f"unknown ref '{ref}' in the repository",
                fix="use a branch, tag or commit SHA that exists there",
            )
        _commits_seen.put((self._key, sha), True)
        return sha

    def branch_head(self, branch: str) -> str | None:
        """The SHA at the tip of ``branch`` (local, else origin's); None if there is no such branch."""
        _plain_ref(branch, "branch")
        return self._peel(f"refs/heads/{branch}") or self._peel(f"refs/remotes/origin/{branch}")

    def is_ancestor(self, older: str, newer: str) -> bool:
        """True when ``older`` is reachable from ``newer`` (a commit is its own ancestor)."""
        key = (self._key, self.resolve(older), self.resolve(newer))
        if key[1] == key[2]:
            return True
        known = _ancestry.get(key)
        if known is not None:
            return known
        args = ("merge-base", "--is-ancestor", key[1], key[2])
        proc = self._proc(*args)
        if proc.returncode not in (0, 1):
            raise _failure(args, self.path, proc)
        return _ancestry.put(key, proc.returncode == 0)

    # --- tags -------------------------------------------------------------------------------

    def version_tags(self, prefix: str = "v") -> list[tuple[Version, str, str]]:
        """``(version, tag, commit sha)`` for every version tag on a commit, lowest version first."""
        fmt = "%(refname:strip=2)%00%(objecttype)%00%(objectname)%00%(*objecttype)%00%(*objectname)"
        found: list[tuple[Version, str, str]] = []
        for line in self._git("for-each-ref", f"--format={fmt}", "refs/tags/").splitlines():
            name, kind, sha, peeled_kind, peeled_sha = line.split("\0")
            version = Version.parse(name, prefix)
            if version is None:
                continue
            if kind == "commit":
                found.append((version, name, sha))
            elif peeled_kind == "commit":
                found.append((version, name, peeled_sha))
            elif peeled_kind == "tag" and (nested := self._peel(f"refs/tags/{name}")):
                found.append((version, name, nested))
        return sorted(found)

    def version_tag_at(
        self, sha: str, prefix: str = "v", tags: Sequence[tuple[Version, str, str]] | None = None
    ) -> str | None:
        """The highest version tag on that commit, or None. ``tags``: ``version_tags(prefix)``
        already listed for the same decision, so they are not listed twice."""
        commit = self.resolve(sha)
        on = [tag for _, tag, tagged in (self.version_tags(prefix) if tags is None else tags) if tagged == commit]
        return on[-1] if on else None

    def create_tag(self, tag: str, sha: str, message: str) -> bool:
        """Create annotated ``tag`` on ``sha``.

        True if created, False if it is already there; Conflict if it exists on another commit.
        """
        _plain_ref(tag, "tag name")
        plain = _PLAIN_TAG.fullmatch(tag) and ".." not in tag and not tag.endswith((".", ".lock"))
        if not plain and self._proc("check-ref-format", f"refs/tags/{tag}").returncode != 0:
            raise InvalidInput(f"invalid tag name {tag!r}", fix="use a name like v1.2.3")
        commit = self.resolve(sha)
        # `git tag` refuses a name that exists: only then is the existing tag looked at
        args = ("tag", "-a", "--cleanup=whitespace", "-m", message, tag, commit)
        proc = self._proc(*args, env=_COMMITTER)
        if proc.returncode == 0:
            return True
        if self._tag_matches(tag, commit):
            return False  # already there (made before, by hand or by someone else meanwhile)
        raise _failure(args, self.path, proc)

    def _tag_matches(self, tag: str, commit: str) -> bool:
        """False if ``tag`` does not exist, True if it is on ``commit``; Conflict if it is elsewhere."""
        if self._proc("rev-parse", "--verify", "--quiet", f"refs/tags/{tag}").returncode != 0:
            return False
        existing = self._peel(f"refs/tags/{tag}")
        if existing != commit:
            raise Conflict(
                f"tag '{tag}' already exists on {existing or 'a non-commit object'}, not on {commit}",
                fix="choose the next version, or delete the stray tag if it was made by mistake",
            )
        return True

    def describe(self, sha: str, prefix: str = "v") -> str:
        """``git describe --tags``: e.g. ``v1.2.0-3-gabc1234``, or the short SHA without tags."""
        commit = self.resolve(sha)
        return self._git("describe", "--tags", "--match", f"{prefix}[0-9]*", "--always", commit).strip()

    # --- worktrees --------------------------------------------------------------------------

    def _worktrees(self) -> dict[Path, str]:
        """Registered worktree path -> HEAD sha (empty string for a bare entry)."""
        result: dict[Path, str] = {}
        for block in self._git("worktree", "list", "--porcelain").split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.splitlines():
                key, _, value = line.partition(" ")
                fields[key] = value
            if "worktree" in fields:
                result[Path(fields["worktree"]).resolve()] = fields.get("HEAD", "")
        return result

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this repository's Conveyor lock (worktree changes, tagging): one process at a time."""
        common = _common_dirs.get(self._key)
        if common is None:
            found = Path(self._git("rev-parse", "--git-common-dir").strip())
            common = _common_dirs.put(self._key, found if found.is_absolute() else self.path / found)
        with (common / "conveyor.lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def add_worktree(self, path: Path, sha: str) -> None:
        """Make ``path`` a detached checkout of exactly ``sha``, replacing whatever was there."""
        commit = self.resolve(sha)
        target = Path(path).resolve()
        if target in self.path.resolve().parents or target == self.path.resolve():
            raise InvalidInput(f"worktree {path} would replace {self.path}", fix="use a separate directory")
        with self.lock():
            if not target.exists() and not target.is_symlink():
                # `add --force` also takes a path registered to a worktree whose directory is gone
                target.parent.mkdir(parents=True, exist_ok=True)
                self._git("worktree", "add", "--detach", "--force", str(target), commit)
                return
            registered = self._worktrees()
            if target.exists() and registered.get(target) == commit:
                return
            if target in registered:
                self._git("worktree", "remove", "--force", "--force", str(target))
            elif target.exists():
                shutil.rmtree(target)
                self.prune_worktrees()
            target.parent.mkdir(parents=True, exist_ok=True)
            self._git("worktree", "add", "--detach", "--force", str(target), commit)

    def remove_worktree(self, path: Path) -> None:
        """Remove the worktree at ``path`` if there is one; a plain directory there is left alone."""
        target = Path(path).resolve()
        with self.lock():
            if target in self._worktrees():
                self._git("worktree", "remove", "--force", "--force", str(target))
            self.prune_worktrees()

    def prune_worktrees(self) -> None:
        """Forget worktrees whose directories are gone."""
        self._git("worktree", "prune")

    # --- history ----------------------------------------------------------------------------

    def commits(self, branch: str, limit: int = 20) -> list[Commit]:
        """The newest ``limit`` commits on ``branch`` (or any ref), newest first."""
        head = self.branch_head(branch) or self.resolve(branch)
        fmt = "--format=%H%x00%h%x00%s%x00%an%x00%aI"
        out = self._git("log", "--no-show-signature", fmt, f"--max-count={max(limit, 0)}", head, "--")
        return [Commit(*line.split("\0")) for line in out.splitlines()]

    def commits_between(self, older: str | None, newer: str, limit: int = 50) -> list[Commit]:
        """The commits ``newer`` brings over ``older`` along first parents (a merged pull request is
        its merge commit), newest first; all of ``newer``'s history (to ``limit``) without ``older``."""
        fmt = "--format=%H%x00%h%x00%s%x00%an%x00%aI"
        span = f"{self.resolve(older)}..{self.resolve(newer)}" if older else self.resolve(newer)
        out = self._git("log", "--no-show-signature", "--first-parent", fmt, f"--max-count={max(limit, 0)}", span, "--")
        return [Commit(*line.split("\0")) for line in out.splitlines()]

    def commit_message(self, sha: str) -> str:
        """The full message of a commit, without the trailing newline."""
        return self._git("show", "-s", "--no-show-signature", "--format=%B", self.resolve(sha)).rstrip("\n")

    def commit_author(self, sha: str) -> tuple[str, str]:
        """The ``(name, email)`` git records as the commit's author."""
        out = self._git("show", "-s", "--no-show-signature", "--format=%an%x00%ae", self.resolve(sha))
        name, _, email = out.rstrip("\n").partition("\0")
        return name, email

    def files_added(self, older: str, newer: str, pattern: str) -> list[str]:
        """Paths matching ``pattern`` (a pathspec glob, e.g. ``*.sql``) that ``newer`` adds over ``older``, sorted."""
        out = self._git(
            "diff",
            "--name-only",
            "--no-renames",
            "--diff-filter=A",
            self.resolve(older),
            self.resolve(newer),
            "--",
            pattern,
        )
        return sorted(line for line in out.splitlines() if line)

    def show_file(self, ref: str, path: str) -> str | None:
        """The text of ``path`` at ``ref``, or None when the file is not there."""
        proc = self._proc("show", f"{self.resolve(ref)}:{path}")
        return proc.stdout if proc.returncode == 0 else None

    # --- remotes ----------------------------------------------------------------------------

    @classmethod
    def clone_mirror(cls, url: str, dest: Path, allow_protocols: str | None = None) -> GitRepo:
        """``git clone --mirror URL DEST``; an existing mirror of the same URL is reused as is.

        ``allow_protocols`` (e.g. ``"https:ssh"``) becomes GIT_ALLOW_PROTOCOL: git refuses any other
        transport, including ones a redirect or a submodule would use.
        """
        dest = Path(dest)
        if cls.is_repo(dest) and GitRepo(dest).origin_url() == url:
            return cls(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        env = {"GIT_ALLOW_PROTOCOL": allow_protocols} if allow_protocols else None
        _run(["clone", "--mirror", "--", url, str(dest)], timeout=NETWORK_TIMEOUT, env=env)
        return cls(dest)

    def origin_url(self) -> str | None:
        """The URL of the ``origin`` remote, or None when there is none."""
        proc = self._proc("config", "--get", "remote.origin.url")
        return proc.stdout.strip() if proc.returncode == 0 else None

    def fetch(self) -> None:
        """Bring branches and tags up to date from ``origin`` (pruning deleted ones); no-op without one."""
        if self.origin_url() is not None:
            self._git("fetch", "--prune", "--tags", "origin", timeout=NETWORK_TIMEOUT)

    def push_tag(self, tag: str) -> None:
        """Push one tag to ``origin`` if there is one; Conflict if origin has that tag elsewhere."""
        _plain_ref(tag, "tag name")
        if self.origin_url() is None:
            return
        # A mirror's push config refuses refspecs, so turn it off for this one push.
        args = ("-c", "remote.origin.mirror=false", "push", "origin", f"refs/tags/{tag}:refs/tags/{tag}")
        proc = self._proc(*args, timeout=NETWORK_TIMEOUT)
        if proc.returncode != 0 and "already exists" in proc.stderr:
            raise Conflict(
                f"tag '{tag}' already exists on origin on another commit",
                fix="fetch, then choose the next version",
            )
        if proc.returncode != 0:
            raise _failure(args, self.path, proc)
