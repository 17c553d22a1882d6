"""A service whose repository has a real bare remote (origin), a production that serves v0.3.0
behind a reviews gate and a schedule, and helpers to drive hotfixes through the API and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.clock import ControlledClock
from tests.conftest import wait_until
from tests.e2e.gates_world import GateWorld, make_gate_world
from tests.e2e.harness import commit, git

TARGET = "{kind: command, deploy: ./scripts/deploy.sh, rollback: ./scripts/rollback.sh}"
WEDNESDAY = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # inside Mon-Fri 09:00-17:00 UTC
SATURDAY = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)  # outside it


def hotfix_config(effects: Path) -> str:
    return textwrap.dedent(
        f"""\
        service: shop
        env: {{EFFECTS: '{effects}'}}
        environments:
          development: {{branch: develop, target: {TARGET}}}
          staging: {{branch: main, target: {TARGET}}}
          production:
            target: {TARGET}
            deployers: [release_manager]
            tag: {{bump: minor}}
            gates:
              reviews: 2
              schedule:
                timezone: UTC
                allow: ["Mon-Fri 09:00-17:00"]
                emergency: {{approvers: [manager]}}
        hotfix: {{reviews: 1, merge_back: [main, develop]}}
        """
    )


@dataclass
class HotfixWorld:
    gw: GateWorld
    clock: ControlledClock
    remote: Path

    @property
    def repo(self) -> Path:
        return self.gw.repo

    def cli(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "conveyor", *args],
            env=self.gw.env_for(user),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def on_branch(self, branch: str, files: dict[str, str], message: str, push: bool = True) -> str:
        """Commit on ``branch`` in a worktree of the service's checkout (and push it to origin)."""
        tree = self.repo.parent / f"wt-{branch.replace('/', '-')}"
        git(self.repo, "worktree", "add", "-q", str(tree), branch)
        try:
            sha = commit(tree, files, message)
            if push:
                git(tree, "push", "-q", "origin", branch)
        finally:
            git(self.repo, "worktree", "remove", "--force", str(tree))
        return sha

    def on_main(self, files: dict[str, str], message: str) -> str:
        sha = commit(self.repo, files, message)
        git(self.repo, "push", "-q", "origin", "main")
        return sha

    def deploy(self, ref: str, *, reviewers: tuple[str, ...] = ("rita", "ron"), **extra: Any) -> dict[str, Any]:
        """Review the ref's commit, deploy it to production as rita, and wait for the end."""
        sha = git(self.repo, "rev-parse", ref)
        for reviewer in reviewers:
            self.gw.review(sha, reviewer)
        d = self.gw.ok_as("rita", "POST", "/deployments", json={"environment": "production", "ref": ref, **extra})
        if extra.get("emergency"):
            self.gw.ok_as("max", "POST", f"/deployments/{d['id']}/approvals", json={"comment": "go"})
        done = self.gw.server.wait_finished(d["id"], timeout=90)
        assert done["state"] == "succeeded", done
        return done

    def merge_backs(self, *extra: str) -> list[dict[str, Any]]:
        out = self.cli("rita", "hotfix", "status", "--json", *extra)
        assert out.returncode == 0, out.stderr
        result: list[dict[str, Any]] = json.loads(out.stdout)
        return result

    def wait_merge_back(self, branch: str, state: str) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((m for m in self.merge_backs("--all") if m["branch"] == branch and m["state"] == state), None)

        return wait_until(found, timeout=60, what=f"merge-back into {branch}: {state}")

    def remote_has(self, sha: str, ref: str) -> bool:
        proc = subprocess.run(["git", "merge-base", "--is-ancestor", sha, ref], cwd=self.remote, capture_output=True)
        return proc.returncode == 0


def make_hotfix_world(tmp_path: Path) -> Iterator[HotfixWorld]:
    """Production serves v0.3.0 (v0.1.0 and v0.2.0 were tagged by hand before Conveyor)."""
    clock = ControlledClock(WEDNESDAY, running=True)
    for gw in make_gate_world(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", hotfix_config, clock=clock):
        remote = tmp_path / "remote.git"
        git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
        git(gw.repo, "tag", "-a", "-m", "old", "v0.1.0")
        git(gw.repo, "tag", "-a", "-m", "old", "v0.2.0")
        git(gw.repo, "remote", "add", "origin", str(remote))
        git(gw.repo, "push", "-q", "origin", "main", "--tags")
        world = HotfixWorld(gw, clock, remote)
        world.on_main({"checkout.txt": "checkout v3\n"}, "Checkout v3")
        git(gw.repo, "branch", "develop")
        git(gw.repo, "push", "-q", "origin", "develop")
        served = world.deploy("main")
        assert served["version"] == "v0.3.0", served
        yield world
