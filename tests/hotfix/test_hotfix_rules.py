"""The rules behind hotfixes, without a server: the version a hotfix gets, why a commit is not a
hotfix, the hotfix keys of conveyor.yml, and what counts as "has the fix" in real git
repositories (ancestry, or a cherry-picked commit with the same patch-id)."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest
from tests.e2e.harness import commit, git

from conveyor.domain.hotfix import HotfixFacts, claim_refusal, hotfix_version
from conveyor.domain.versions import Version
from conveyor.spec import SpecError, parse_spec
from conveyor.vcs import branches
from conveyor.vcs.git import GitRepo

SPEC = """\
service: shop
environments:
  staging: {branch: main, target: {kind: command, deploy: ./d.sh}}
  production: {target: {kind: command, deploy: ./d.sh}}
"""


def test_a_fix_on_v0_3_0_is_v0_3_1_even_when_later_versions_exist() -> None:
    assert hotfix_version(Version(0, 3, 0), [Version(0, 1, 0), Version(0, 3, 0), Version(0, 4, 0)]) == Version(0, 3, 1)
    assert hotfix_version(Version(0, 3, 0), [Version(0, 3, 1)]) == Version(0, 3, 2)  # a failed v0.3.1 keeps its number


def facts(**kw: object) -> HotfixFacts:
    base: dict[str, object] = {
        "environment": "production",
        "sha": "b" * 40,
        "base_sha": "a" * 40,
        "base_version": "v0.3.0",
        "based": True,
        "own": ("bbbbbbb",),
    }
    return HotfixFacts(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"based": False}, "its base is not v0.3.0, which production serves"),
        ({"borrowed": ("ccccccc",), "borrowed_from": ("develop",)}, "it carries 1 commit(s) over v0.3.0 from develop"),
        ({"own": tuple("x" * 11)}, "it has 11 commits over v0.3.0; a hotfix has at most 10"),
        ({"own": ()}, "it has no commits of its own over v0.3.0"),
        ({"base_sha": None, "base_version": None}, "nothing serves in production yet"),
    ],
)
def test_why_a_commit_is_or_is_not_a_hotfix(changes: dict[str, object], reason: str | None) -> None:
    found = facts(**changes)
    if reason is None:
        assert found.qualifies and found.reason_not is None
    else:
        assert not found.qualifies and found.reason_not is not None and found.reason_not.startswith(reason)


def test_a_ref_named_like_a_hotfix_that_is_none_is_refused_with_the_command_to_make_one() -> None:
    wrong = facts(based=False, claimed=True, ref="hotfix/x")
    assert claim_refusal(wrong, "conveyor hotfix start production x") == (
        "hotfix/x is not a hotfix: its base is not v0.3.0, which production serves; "
        "make a proper hotfix branch with `conveyor hotfix start production x`"
    )
    assert claim_refusal(facts(based=False), "x") is None  # not named as one: just no fast track
    assert claim_refusal(facts(claimed=True, ref="hotfix/y"), "x") is None


def test_hotfix_keys_act_and_are_checked() -> None:
    spec = parse_spec(SPEC + "hotfix: {merge_back: [main, develop]}\n", "conveyor.yml")
    assert spec.hotfix is not None and spec.hotfix.merge_back == ["main", "develop"]
    assert (spec.hotfix.environment, spec.hotfix.max_commits) == ("production", 10)
    assert spec.hotfix.identity == "Conveyor <conveyor@localhost>"
    with pytest.raises(SpecError) as unknown:
        parse_spec(SPEC + "hotfix: {environment: prod}\n", "conveyor.yml")
    assert "hotfix.environment 'prod' is not an environment; defined: production, staging" in str(unknown.value)
    with pytest.raises(SpecError) as identity:
        parse_spec(SPEC + "hotfix: {identity: conveyor}\n", "conveyor.yml")
    assert "must be 'Name <email>'" in str(identity.value)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "r"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    commit(path, {"a.txt": "one\n", "b.txt": "one\n"}, "base")
    git(path, "tag", "base")
    git(path, "branch", "hotfix/x")
    return path


def test_a_cherry_picked_fix_counts_as_present_and_a_rewritten_one_does_not(repo: Path) -> None:
    commit(repo, {"b.txt": "main moved\n"}, "main moves on")
    git(repo, "switch", "-q", "hotfix/x")
    fix = commit(repo, {"a.txt": "fixed\n"}, "Fix a")
    git(repo, "switch", "-q", "main")
    r = GitRepo(repo)
    assert [c.sha for c in branches.missing_from(r, "main", fix)] == [fix]
    assert not branches.contains(r, "main", fix, git(repo, "rev-parse", "base"))

    git(repo, "cherry-pick", "-x", fix)  # same patch-id, another commit
    assert branches.missing_from(r, "main", fix) == []
    assert branches.contains(r, "main", fix, git(repo, "rev-parse", "base"))

    git(repo, "reset", "-q", "--hard", "HEAD~1")
    commit(repo, {"a.txt": "fixed differently\n"}, "Fix a another way")  # another patch: not the fix
    assert [c.sha for c in branches.missing_from(r, "main", fix)] == [fix]


def test_a_conflicting_merge_makes_nothing_and_names_the_files(repo: Path, tmp_path: Path) -> None:
    commit(repo, {"a.txt": "rewritten on main\n"}, "rewrite a")
    git(repo, "switch", "-q", "hotfix/x")
    fix = commit(repo, {"a.txt": "fixed\n"}, "Fix a")
    git(repo, "switch", "-q", "main")
    r = GitRepo(repo)
    head = git(repo, "rev-parse", "main")
    outcome = branches.merge(r, tmp_path / "scratch", head, fix, "Merge", "Conveyor <c@localhost>")
    assert outcome.sha is None and outcome.conflicts == ("a.txt",)
    assert git(repo, "rev-parse", "main") == head and not (tmp_path / "scratch").exists()
    assert dedent(git(repo, "status", "--porcelain")) == ""
