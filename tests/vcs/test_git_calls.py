"""A deployment runs a bounded number of git processes: each step asks git only what it needs
(the ref resolved once, the tags listed once per tag decision, the repository's common dir
looked up once per process). Counted by conveyor.vcs.git.calls, through the real pipeline in
this process. Before these bounds a production deployment over a serving release ran 30."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.conftest import wait_until
from tests.e2e.harness import commit, git, make_service_repo
from tests.inproc import FINISHED, App, app

from conveyor.vcs import git as vcs_git
from conveyor.vcs.git import GitRepo

# A production deployment (request, prepare with a build, tag, migrate, rollout, smoke, announce,
# its tag made on success) over a serving release, from its request to its end.
MOST_WARM = 8  # what this process already knows of the repository (the usual case)
MOST_COLD = 10  # a process that never saw the repository (after a restart)


def deploy(a: App, environment: str, ref: str) -> tuple[dict[str, object], Counter[str]]:
    before = Counter(vcs_git.calls)
    d = a.ok("admin", "POST", "/deployments", json={"environment": environment, "ref": ref})
    done = a.wait_finished(d["id"])
    return done, vcs_git.calls - before


def settle(a: App) -> None:
    """Wait until the deployments that adding the service started (its followed branches) end."""

    def idle() -> bool:
        rows = a.ok("admin", "GET", "/deployments")
        items = rows["items"] if isinstance(rows, dict) else rows
        return all(r["state"] in FINISHED for r in items)

    wait_until(idle, timeout=60, what="the first deployments to finish")


def test_a_production_deployment_runs_few_git_processes(tmp_path: Path) -> None:
    repo = make_service_repo(tmp_path / "shop", tmp_path / "effects")
    with app(tmp_path / "home", f"sqlite:///{tmp_path / 'c.db'}", {}) as a:
        a.ok("admin", "POST", "/services", json={"source": str(repo)})
        settle(a)
        first, _ = deploy(a, "production", "main")
        assert first["state"] == "succeeded", first
        commit(repo, {"app.txt": "version two\n"}, "second")
        warm_done, warm = deploy(a, "production", "main")
        assert warm_done["state"] == "succeeded", warm_done
        commit(repo, {"app.txt": "version three\n"}, "third")
        vcs_git.forget_memos()
        cold_done, cold = deploy(a, "production", "main")
        assert cold_done["state"] == "succeeded", cold_done
    print(f"\ngit processes: warm {sum(warm.values())} {dict(warm)}; cold {sum(cold.values())} {dict(cold)}")
    assert [t for _, t, _ in GitRepo(repo).version_tags()] == ["v0.1.0", "v0.2.0", "v0.3.0"]
    assert sum(warm.values()) <= MOST_WARM, warm
    assert sum(cold.values()) <= MOST_COLD, cold
    for counted in (warm, cold):
        assert counted["rev-parse --git-common-dir"] <= 1, counted
        assert counted["for-each-ref"] == 1, counted  # one tag decision, one listing
        assert counted["rev-parse --verify"] <= 2, counted  # the ref, and the serving release's commit


def test_a_moving_branch_is_resolved_again_but_a_known_commit_is_not(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    one = commit(work, {"a": "1"}, "one")
    repo = GitRepo(work)
    assert repo.resolve("main") == one
    two = commit(work, {"a": "2"}, "two")
    assert repo.resolve("main") == two  # a branch is never memoized
    before = sum(vcs_git.calls.values())
    assert repo.resolve(one) == one and repo.is_ancestor(one, two)
    assert repo.is_ancestor(one, two) and not repo.is_ancestor(two, one)
    assert sum(vcs_git.calls.values()) - before == 2  # two merge-base calls; the commits were known
    git(work, "tag", "v0.1.0", one)
    assert repo.resolve("v0.1.0") == one
    git(work, "tag", "-f", "v0.1.0", two)
    assert repo.resolve("v0.1.0") == two  # nor is a tag
