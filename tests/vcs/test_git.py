"""GitRepo against real repositories made in temporary directories."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from conveyor.domain.versions import Version
from conveyor.errors import Conflict, ConveyorError, InvalidInput
from conveyor.vcs.git import GitRepo


def git(cwd: Path, *args: str) -> str:
    """Run git as a developer would (with an identity); return stripped stdout."""
    proc = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def commit(cwd: Path, name: str, content: str, message: str, date: str | None = None) -> str:
    (cwd / name).write_text(content)
    git(cwd, "add", name)
    git(cwd, "commit", "-q", "-m", message, *([f"--date={date}"] if date else []))
    return git(cwd, "rev-parse", "HEAD")


@pytest.fixture(autouse=True)
def no_git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No global or system git config, no identity from the environment."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for var in ("NAME", "EMAIL", "DATE"):
        for who in ("AUTHOR", "COMMITTER"):
            monkeypatch.delenv(f"GIT_{who}_{var}", raising=False)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """main: c1 - c2 - merge(develop); develop: c1 - d1 - d2 (merged into main); topic off c1."""
    path = tmp_path / "work"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    commit(path, "app.txt", "one\n", "First commit", date="2024-05-01T10:00:00+02:00")
    git(path, "branch", "topic")
    git(path, "checkout", "-q", "-b", "develop")
    commit(path, "feature.txt", "f1\n", "Add feature")
    commit(path, "feature.txt", "f2\n", "Polish feature — café ✓")
    git(path, "checkout", "-q", "main")
    commit(path, "app.txt", "two\n", "Second commit\n\nWith a body.\n# not a comment")
    git(path, "merge", "-q", "--no-ff", "-m", "Merge develop", "develop")
    return path


@pytest.fixture
def repo(work: Path) -> GitRepo:
    return GitRepo(work)


def sha(cwd: Path, ref: str) -> str:
    return git(cwd, "rev-parse", f"{ref}^{{commit}}")


# --- refs -------------------------------------------------------------------------------------


def test_is_repo(work: Path, tmp_path: Path) -> None:
    (work / "sub").mkdir()
    git(tmp_path, "init", "-q", "--bare", "bare.git")
    assert GitRepo.is_repo(work)
    assert GitRepo.is_repo(tmp_path / "bare.git")
    assert not GitRepo.is_repo(work / "sub")  # inside a repository is not a repository
    assert not GitRepo.is_repo(tmp_path)
    assert not GitRepo.is_repo(tmp_path / "missing")


def test_resolve_branches_tags_and_short_shas(repo: GitRepo, work: Path) -> None:
    head = sha(work, "main")
    git(work, "tag", "-a", "-m", "release", "v1.0.0", "main")
    assert repo.resolve("main") == head
    assert repo.resolve("v1.0.0") == head  # annotated tag peeled to its commit
    assert repo.resolve(head[:8]) == head
    assert repo.resolve("HEAD~1") == sha(work, "main~1")
    assert len(head) == 40


def test_resolve_unknown_ref_names_it_and_the_fix(repo: GitRepo, work: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        repo.resolve("no-such-branch")
    assert caught.value.message == "unknown ref 'no-such-branch' in the repository"  # no server path
    assert caught.value.fix == "use a branch, tag or commit SHA that exists there"


@pytest.mark.parametrize("ref", ["-h", "--all", "", "main\nHEAD"])
def test_resolve_refuses_option_like_refs(repo: GitRepo, ref: str) -> None:
    with pytest.raises(InvalidInput):
        repo.resolve(ref)


def test_branch_head(repo: GitRepo, work: Path) -> None:
    assert repo.branch_head("main") == sha(work, "main")
    assert repo.branch_head("develop") == sha(work, "develop")
    assert repo.branch_head("nope") is None
    git(work, "tag", "lonely", "topic")
    assert repo.branch_head("lonely") is None  # a tag is not a branch


def test_branch_head_sees_remote_branches_of_a_clone(work: Path, tmp_path: Path) -> None:
    git(tmp_path, "clone", "-q", str(work), "clone")
    clone = GitRepo(tmp_path / "clone")
    assert clone.branch_head("develop") == sha(work, "develop")  # only refs/remotes/origin/develop


def test_is_ancestor(repo: GitRepo, work: Path) -> None:
    assert repo.is_ancestor("develop", "main")  # develop was merged into main
    assert not repo.is_ancestor("main", "develop")
    assert repo.is_ancestor("main", "main")
    assert repo.is_ancestor(sha(work, "topic"), "develop")
    with pytest.raises(InvalidInput, match="unknown ref 'ghost'"):
        repo.is_ancestor("ghost", "main")


# --- tags -------------------------------------------------------------------------------------


def test_version_tags_sorted_peeled_and_filtered(repo: GitRepo, work: Path) -> None:
    git(work, "tag", "-a", "-m", "r", "v1.10.0", "main")
    git(work, "tag", "v1.9.0", "develop")  # lightweight
    git(work, "tag", "-a", "-m", "r", "v0.1.0", "topic")
    git(work, "tag", "-a", "-m", "r", "v2.0.0-rc1", "main")  # not a plain version
    git(work, "tag", "nightly", "main")
    git(work, "tag", "v3.0.0", git(work, "rev-parse", "main^{tree}"))  # not on a commit
    git(work, "tag", "-a", "-m", "nested", "v1.10.1", "v1.10.0")  # a tag of a tag
    assert repo.version_tags() == [
        (Version(0, 1, 0), "v0.1.0", sha(work, "topic")),
        (Version(1, 9, 0), "v1.9.0", sha(work, "develop")),
        (Version(1, 10, 0), "v1.10.0", sha(work, "main")),
        (Version(1, 10, 1), "v1.10.1", sha(work, "main")),
    ]


def test_version_tags_with_another_prefix(repo: GitRepo, work: Path) -> None:
    git(work, "tag", "shop/v1.0.0", "main")
    git(work, "tag", "v5.0.0", "main")
    assert repo.version_tags(prefix="shop/v") == [(Version(1, 0, 0), "shop/v1.0.0", sha(work, "main"))]


def test_version_tag_at(repo: GitRepo, work: Path) -> None:
    assert repo.version_tag_at("main") is None
    git(work, "tag", "v1.2.0", "main")
    git(work, "tag", "-a", "-m", "r", "v1.10.0", "main")
    git(work, "tag", "v2.0.0", "develop")
    assert repo.version_tag_at(sha(work, "main")) == "v1.10.0"
    assert repo.version_tag_at("develop") == "v2.0.0"
    assert repo.version_tag_at("topic") is None


def test_create_tag_is_annotated_and_idempotent(repo: GitRepo, work: Path) -> None:
    head = sha(work, "main")
    message = "Release v1.0.0\n\n# Changes\n- one"
    assert repo.create_tag("v1.0.0", head, message) is True
    assert git(work, "cat-file", "-t", "v1.0.0") == "tag"
    assert sha(work, "v1.0.0") == head
    assert git(work, "for-each-ref", "--format=%(taggername) %(taggeremail)", "refs/tags/v1.0.0") == (
        "Conveyor <conveyor@localhost>"
    )
    assert git(work, "for-each-ref", "--format=%(contents)", "refs/tags/v1.0.0") == message
    assert repo.create_tag("v1.0.0", "main", "again") is False
    assert repo.version_tag_at(head) == "v1.0.0"


def test_create_tag_conflicts_when_the_tag_is_elsewhere(repo: GitRepo, work: Path) -> None:
    repo.create_tag("v1.0.0", "develop", "r")
    git(work, "tag", "v2.0.0", "topic")  # lightweight, elsewhere
    with pytest.raises(Conflict, match=r"tag 'v1\.0\.0' already exists"):
        repo.create_tag("v1.0.0", "main", "r")
    with pytest.raises(Conflict, match=r"tag 'v2\.0\.0' already exists"):
        repo.create_tag("v2.0.0", "main", "r")
    assert sha(work, "v1.0.0") == sha(work, "develop")


@pytest.mark.parametrize("name", ["-v1", "v1..0", "bad name", "v1.0.0.lock", ""])
def test_create_tag_refuses_bad_names(repo: GitRepo, name: str) -> None:
    with pytest.raises(InvalidInput):
        repo.create_tag(name, "main", "r")


def test_create_tag_on_unknown_commit(repo: GitRepo) -> None:
    with pytest.raises(InvalidInput, match="unknown ref 'f00d'"):
        repo.create_tag("v1.0.0", "f00d", "r")


def test_describe(repo: GitRepo, work: Path) -> None:
    short = git(work, "rev-parse", "--short", "main")
    assert repo.describe("main") == short
    git(work, "tag", "-a", "-m", "r", "v1.0.0", "develop")
    git(work, "tag", "-a", "-m", "r", "nightly", "main")  # does not match v[0-9]*
    assert repo.describe("develop") == "v1.0.0"
    described = repo.describe("main")  # e.g. v1.0.0-2-g1a2b3c4 (git's count can vary with merges)
    assert described.startswith("v1.0.0-") and described.endswith(f"-g{short}")


# --- worktrees --------------------------------------------------------------------------------


def worktree_heads(work: Path) -> dict[str, str]:
    out = git(work, "worktree", "list", "--porcelain")
    heads = {}
    for block in out.split("\n\n"):
        lines = dict(line.partition(" ")[::2] for line in block.splitlines())
        heads[str(Path(lines["worktree"]).resolve())] = lines.get("HEAD", "")
    return heads


def test_add_worktree_checks_out_exactly_that_commit(repo: GitRepo, work: Path, tmp_path: Path) -> None:
    target = tmp_path / "builds" / "shop" / "abc"
    repo.add_worktree(target, "develop")
    assert (target / "feature.txt").read_text() == "f2\n"
    assert git(target, "rev-parse", "HEAD") == sha(work, "develop")
    assert subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=target).returncode == 1  # detached
    assert worktree_heads(work)[str(target.resolve())] == sha(work, "develop")


def test_add_worktree_is_idempotent(repo: GitRepo, tmp_path: Path) -> None:
    target = tmp_path / "wt"
    repo.add_worktree(target, "develop")
    (target / "build-output").write_text("kept")
    repo.add_worktree(target, "develop")
    assert (target / "build-output").read_text() == "kept"


def test_add_worktree_replaces_a_different_checkout(repo: GitRepo, work: Path, tmp_path: Path) -> None:
    target = tmp_path / "wt"
    repo.add_worktree(target, "develop")
    (target / "build-output").write_text("stale")
    repo.add_worktree(target, "topic")
    assert not (target / "build-output").exists()
    assert not (target / "feature.txt").exists()
    assert git(target, "rev-parse", "HEAD") == sha(work, "topic")


def test_add_worktree_replaces_a_plain_directory(repo: GitRepo, work: Path, tmp_path: Path) -> None:
    target = tmp_path / "wt"
    (target / "junk").mkdir(parents=True)
    (target / "junk" / "file").write_text("x")
    repo.add_worktree(target, "main")
    assert not (target / "junk").exists()
    assert git(target, "rev-parse", "HEAD") == sha(work, "main")


def test_add_worktree_after_its_directory_vanished(repo: GitRepo, work: Path, tmp_path: Path) -> None:
    target = tmp_path / "wt"
    repo.add_worktree(target, "main")
    subprocess.run(["rm", "-rf", str(target)], check=True)
    repo.add_worktree(target, "main")
    assert git(target, "rev-parse", "HEAD") == sha(work, "main")


def test_add_worktree_never_replaces_the_repository(repo: GitRepo, work: Path) -> None:
    for path in (work, work.parent):
        with pytest.raises(InvalidInput, match="would replace"):
            repo.add_worktree(path, "main")
    assert (work / "app.txt").exists()


def test_remove_and_prune_worktrees(repo: GitRepo, work: Path, tmp_path: Path) -> None:
    target = tmp_path / "wt"
    repo.add_worktree(target, "main")
    (target / "app.txt").write_text("dirty")
    repo.remove_worktree(target)
    assert not target.exists()
    repo.remove_worktree(target)  # again: nothing to do
    assert str(target.resolve()) not in worktree_heads(work)

    other = tmp_path / "other"
    repo.add_worktree(other, "main")
    subprocess.run(["rm", "-rf", str(other)], check=True)
    repo.prune_worktrees()
    assert list(worktree_heads(work)) == [str(work.resolve())]


# --- history ----------------------------------------------------------------------------------


def test_commits(repo: GitRepo, work: Path) -> None:
    commits = repo.commits("develop")
    assert [c.subject for c in commits] == ["Polish feature — café ✓", "Add feature", "First commit"]
    first = commits[-1]
    assert first.sha == sha(work, "topic")
    assert first.short == git(work, "rev-parse", "--short", "topic")
    assert first.author == "t"
    assert first.authored_at == "2024-05-01T10:00:00+02:00"
    assert datetime.fromisoformat(commits[0].authored_at).tzinfo is not None
    assert [c.subject for c in repo.commits("main", limit=2)] == ["Merge develop", "Second commit"]
    assert repo.commits("main", limit=0) == []


def test_commits_of_unknown_branch(repo: GitRepo) -> None:
    with pytest.raises(InvalidInput, match="unknown ref 'nope'"):
        repo.commits("nope")


def test_commit_message(repo: GitRepo) -> None:
    assert repo.commit_message("main~1") == "Second commit\n\nWith a body.\n# not a comment"
    assert repo.commit_message("develop") == "Polish feature — café ✓"


# --- mirrors and remotes ----------------------------------------------------------------------


@pytest.fixture
def origin(work: Path, tmp_path: Path) -> Path:
    """A bare repository that ``work`` pushes to, as GitHub would hold it."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(work, "remote", "add", "origin", str(bare))
    git(work, "push", "-q", "origin", "main", "develop", "topic")
    return bare


def test_clone_mirror_and_fetch_new_pushes(origin: Path, work: Path, tmp_path: Path) -> None:
    mirror = GitRepo.clone_mirror(str(origin), tmp_path / "mirrors" / "shop.git")
    assert GitRepo.is_repo(mirror.path)
    assert mirror.branch_head("develop") == sha(work, "develop")
    assert mirror.origin_url() == str(origin)

    git(work, "checkout", "-q", "develop")
    new = commit(work, "feature.txt", "f3\n", "More feature")
    git(work, "tag", "-a", "-m", "r", "v0.2.0", "develop")
    git(work, "push", "-q", "origin", "develop", "v0.2.0")
    git(work, "push", "-q", "origin", "--delete", "topic")
    assert mirror.branch_head("develop") != new

    mirror.fetch()
    assert mirror.branch_head("develop") == new
    assert mirror.version_tags() == [(Version(0, 2, 0), "v0.2.0", new)]
    assert mirror.branch_head("topic") is None  # pruned
    assert mirror.commits("develop", limit=1)[0].subject == "More feature"


def test_clone_mirror_reuses_an_existing_mirror(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "shop.git"
    GitRepo.clone_mirror(str(origin), dest)
    again = GitRepo.clone_mirror(str(origin), dest)
    assert again.path == dest


def test_clone_mirror_failure_names_the_command(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.git"
    with pytest.raises(ConveyorError) as caught:
        GitRepo.clone_mirror(str(missing), tmp_path / "dest.git")
    assert "`git clone --mirror" in caught.value.message
    assert "does not exist" in caught.value.message


def test_mirror_worktree_tag_and_push(origin: Path, work: Path, tmp_path: Path) -> None:
    mirror = GitRepo.clone_mirror(str(origin), tmp_path / "shop.git")
    mirror.add_worktree(tmp_path / "build", "main")
    assert (tmp_path / "build" / "app.txt").read_text() == "two\n"

    assert mirror.create_tag("v1.0.0", "main", "Release v1.0.0")
    mirror.push_tag("v1.0.0")
    mirror.push_tag("v1.0.0")  # pushing again is fine
    assert git(origin, "rev-parse", "v1.0.0^{commit}") == sha(work, "main")
    assert git(origin, "cat-file", "-t", "v1.0.0") == "tag"

    git(work, "tag", "v1.1.0", "topic")
    git(work, "push", "-q", "origin", "v1.1.0")
    mirror.create_tag("v1.1.0", "main", "clash")  # the mirror has not fetched yet
    with pytest.raises(Conflict, match=r"v1\.1\.0"):
        mirror.push_tag("v1.1.0")


def test_fetch_and_push_without_origin_do_nothing(repo: GitRepo) -> None:
    assert repo.origin_url() is None
    repo.fetch()
    repo.create_tag("v1.0.0", "main", "r")
    repo.push_tag("v1.0.0")


def test_environment_cannot_redirect_git(
    repo: GitRepo, work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    git(tmp_path, "init", "-q", "-b", "main", str(other))
    expected = sha(work, "main")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    assert repo.resolve("main") == expected


def test_a_directory_inside_a_repository_is_not_that_repository(work: Path) -> None:
    (work / "sub").mkdir()
    with pytest.raises(InvalidInput, match="unknown ref 'main'"):
        GitRepo(work / "sub").resolve("main")
