"""``conveyor revert ENV [--to VERSION]``: the process document's manual rollback, done by
Conveyor. It makes the revert commit on the environment's branch (``git revert -m 1`` of each
merge that brought the change, a plain revert of each direct commit, along first parents
between the two releases) and publishes the branch; the normal flow then carries it, staging
first. It undoes code only: migrations stay applied."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth.policy import may_deploy
from conveyor.auth.users import User
from conveyor.engine.hotfix import policy, spec_of
from conveyor.errors import Conflict, InvalidInput, NotFound
from conveyor.runtime import Runtime
from conveyor.spec import ServiceSpec
from conveyor.store import deployments as store
from conveyor.store import services as service_store
from conveyor.vcs import branches
from conveyor.vcs.git import GitRepo

NOT_UNDONE = (
    "It does not undo database migrations: the schema stays as the reverted release left it "
    "(the database rollback of the process document is a separate, deliberate step)."
)


@dataclass(frozen=True)
class Reverted:
    service: str
    environment: str
    branch: str
    sha: str
    reverted: tuple[str, ...]  # "short subject" of each commit undone
    from_version: str
    to_version: str
    pushed: bool
    plan: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "environment": self.environment,
            "branch": self.branch,
            "sha": self.sha,
            "reverted": list(self.reverted),
            "from": self.from_version,
            "to": self.to_version,
            "pushed": self.pushed,
            "plan": list(self.plan),
        }


def branch_for(spec: ServiceSpec, environment: str) -> str:
    """The branch a revert for ``environment`` goes on: its own, else the one of the environment
    it is verified in (staging's for production)."""
    env = spec.environment(environment)
    if env.branch:
        return env.branch
    verified = env.gates.staging_verified.environment if env.gates.staging_verified else "staging"
    upstream = spec.environments.get(verified)
    if upstream is not None and upstream.branch:
        return upstream.branch
    raise InvalidInput(
        f"{environment} follows no branch, so there is no branch to revert on",
        fix="revert on the branch that feeds it by hand, or give the environment a branch",
    )


def revert(rt: Runtime, user: User, service: str | None, environment: str, to: str | None) -> Reverted:
    with rt.db.read() as conn:
        svc = service_store.pick_service(conn, service)
    spec = spec_of(svc.config_text)
    decision = may_deploy(user.name, user.roles, environment, spec.environment(environment))
    if not decision.allowed:
        raise refuse(rt, user.name, "revert", f"{svc.name}/{environment}", decision.reason)
    branch = branch_for(spec, environment)
    repo = GitRepo(Path(svc.repo_path))
    if svc.source != svc.repo_path:
        repo.fetch()
    with rt.db.read() as conn:
        current = store.current_release(conn, svc.id, environment)
        earlier = [r for r in store.previous_releases(conn, svc.id, environment) if current and r.id != current.id]
        current_version = store.serving_version(conn, svc.id, current) if current else ""
        named = {store.serving_version(conn, svc.id, r): r for r in earlier}
    if current is None:
        raise Conflict(f"nothing serves in {environment}, so there is nothing to revert")
    if to is not None:
        target = named.get(to) or next((r for r in earlier if r.version == to), None)
        if target is None:
            raise NotFound(f"{to!r} is not an earlier release in {environment}", fix=f"pick one of: {', '.join(named)}")
    elif earlier:
        target = earlier[0]
    else:
        raise Conflict(f"{environment} has no earlier release to revert to")
    target_version = next((v for v, r in named.items() if r.id == target.id), target.version)
    if not repo.is_ancestor(target.sha, current.sha):
        raise Conflict(
            f"{target_version} is not an ancestor of {current_version}: there is no straight line of changes to revert",
            fix=f"use `conveyor rollback {environment} --to {target_version}` to serve it again",
        )
    head = repo.branch_head(branch)
    if head is None:
        raise NotFound(f"branch {branch!r} does not exist", fix="check the environment's branch")
    undo = branches.first_parent_commits(repo, target.sha, current.sha)
    if not undo:
        raise Conflict(f"{current_version} brings nothing over {target_version}")
    scratch = rt.settings.home / "reverts" / f"{svc.name}-{environment}-{current.sha[:12]}"
    undoing = [(c.sha, branches.is_merge(repo, c.sha)) for c in undo]
    outcome = branches.revert(repo, scratch, head, undoing, policy(spec).identity)  # the worktree takes the lock
    if outcome.conflicts:
        raise Conflict(
            f"reverting {current_version} on {branch} conflicts in {', '.join(outcome.conflicts)}",
            fix=f"revert by hand on {branch}: git revert -m 1 <merge> (then push)",
        )
    if outcome.sha is None:
        raise Conflict(f"{branch} already has no trace of {current_version}'s changes")
    with repo.lock():
        pushed = branches.publish(repo, branch, outcome.sha, head)
    followers = [n for n, e in spec.environments.items() if e.branch == branch and e.auto_deploy]
    plan = (
        f"made {outcome.sha[:12]} on {branch}: it reverts {len(undo)} change(s) {current_version} brought over "
        f"{target_version}" + (" and was pushed to origin" if pushed else ""),
        (
            f"the normal flow carries it: {', '.join(followers)} deploy {branch} by themselves"
            if followers
            else f"deploy it through the normal flow: conveyor deploy {environment} --ref {branch}"
        )
        + (f"; then {environment} through its gates" if environment not in followers else ""),
        NOT_UNDONE,
    )
    now = rt.clock.now()
    with rt.db.begin() as conn:
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action="revert.created",
            subject=f"{svc.name}/{environment}",
            details={
                "service": svc.name,
                "environment": environment,
                "branch": branch,
                "sha": outcome.sha,
                "from": current_version,
                "to": target_version,
                "reverted": [c.sha for c in undo],
                "pushed": pushed,
            },
        )
    shown = tuple(f"{c.short} {c.subject}" for c in undo)
    return Reverted(svc.name, environment, branch, outcome.sha, shown, current_version, target_version, pushed, plan)
