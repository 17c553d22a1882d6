"""`conveyor revert`: the process document's manual rollback. A feature merged into main reaches
staging by itself; `conveyor revert staging` makes `git revert -m 1` of that merge on main, says
what it will not undo (migrations), and the revert reaches staging by itself."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import wait_until
from tests.e2e.harness import Server, commit, git, make_service_repo


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, Server]]:
    repo = make_service_repo(tmp_path / "shop", tmp_path / "effects")
    server = Server(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'c.db'}").start()
    server.ok("POST", "/services", json={"source": str(repo)})
    try:
        yield repo, server
    finally:
        server.stop()


def staging_serves(server: Server, sha: str) -> dict[str, object]:
    def serving() -> dict[str, object] | None:
        done = [d for d in server.deployments("staging") if d["sha"] == sha and d["state"] == "succeeded"]
        return done[0] if done else None

    return wait_until(serving, timeout=60, what=f"staging to serve {sha[:12]}")


def test_revert_reverts_the_merge_and_the_revert_reaches_staging_by_itself(site: tuple[Path, Server]) -> None:
    repo, server = site
    staging_serves(server, git(repo, "rev-parse", "main"))
    git(repo, "switch", "-q", "-c", "feature")
    commit(repo, {"feature.txt": "new checkout\n"}, "New checkout")
    git(repo, "switch", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "feature", "-m", "Merge branch 'feature'")
    merge = git(repo, "rev-parse", "main")
    staging_serves(server, merge)  # the merge reached staging by itself

    out = subprocess.run(
        [sys.executable, "-m", "conveyor", "revert", "staging"],
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "does not undo database migrations" in out.stdout, out.stdout
    assert "staging deploy main by themselves" in out.stdout, out.stdout

    reverted = git(repo, "rev-parse", "main")
    assert git(repo, "rev-parse", "main^") == merge
    assert git(repo, "log", "-1", "--format=%s", "main") == "Revert \"Merge branch 'feature'\""
    assert git(repo, "ls-tree", "--name-only", "main", "feature.txt") == ""  # the change is gone
    assert not (repo / "feature.txt").exists()  # the checked-out main moved with it
    staging_serves(server, reverted)  # ... and it reached staging by itself

    again = subprocess.run(
        [sys.executable, "-m", "conveyor", "revert", "production"],
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 1 and "nothing serves in production" in again.stderr, again.stderr
