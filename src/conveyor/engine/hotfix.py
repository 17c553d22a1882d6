"""Hotfixes (docs/hotfix.md): measure a commit against the release serving in production, start
a hotfix branch from that release, and refuse a ref that names a hotfix branch but is none."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth.users import User
from conveyor.domain.hotfix import HotfixFacts, claim_refusal
from conveyor.errors import Conflict
from conveyor.runtime import Runtime
from conveyor.spec import ServiceSpec, parse_spec
from conveyor.spec.models import HotfixSpec
from conveyor.store import deployments as store
from conveyor.store import services as service_store
from conveyor.store.records import ServiceRecord
from conveyor.vcs import branches
from conveyor.vcs.git import GitRepo

STARTERS = ("engineer", "release_manager", "manager")  # who may cut a hotfix branch


@lru_cache(maxsize=128)
def spec_of(config_text: str) -> ServiceSpec:
    return parse_spec(config_text, "conveyor.yml")


def policy(spec: ServiceSpec) -> HotfixSpec:
    """The service's hotfix policy, or the defaults (which name production) when it has none."""
    return spec.hotfix or HotfixSpec()


def production(spec: ServiceSpec) -> str:
    """The environment hotfixes are based on and that refuses missing commits."""
    return policy(spec).environment


def mainline(spec: ServiceSpec) -> list[str]:
    """Branches a hotfix takes no commits from: its merge-back branches and every followed branch."""
    hotfix = policy(spec)
    followed = [env.branch for env in spec.environments.values() if env.branch]
    names = [*hotfix.merge_back, *followed]
    return [b for b in dict.fromkeys(names) if not b.startswith(hotfix.branch_prefix)]


def start_command(spec: ServiceSpec, ref: str = "") -> str:
    hotfix = policy(spec)
    name = ref.removeprefix(hotfix.branch_prefix) if ref.startswith(hotfix.branch_prefix) else "NAME"
    return f"conveyor hotfix start {hotfix.environment} {name or 'NAME'}"


def facts(
    conn: Connection, repo: GitRepo, service: ServiceRecord, sha: str, ref: str, environment: str | None = None
) -> HotfixFacts:
    """``sha`` measured against the release serving in the hotfix environment. ``environment``
    (where it is to deploy) decides the reviews shown as needed."""
    spec = spec_of(service.config_text)
    hotfix = policy(spec)
    target = environment or hotfix.environment
    reviews = spec.environments[target].gates.reviews if target in spec.environments else None
    needed = min(reviews, hotfix.reviews) if reviews and spec.hotfix is not None else None
    claimed = spec.hotfix is not None and ref.startswith(hotfix.branch_prefix)
    base = store.current_release(conn, service.id, hotfix.environment)
    known = HotfixFacts(
        environment=hotfix.environment,
        sha=sha,
        base_sha=None,
        base_version=None,
        based=False,
        max_commits=hotfix.max_commits,
        reviews=needed,
        claimed=claimed,
        ref=ref,
    )
    if base is None:
        return known
    version = store.serving_version(conn, service.id, base)
    known = replace(known, base_sha=base.sha, base_version=version, based=base.sha == sha)
    if base.sha == sha or not repo.is_ancestor(base.sha, sha):
        return known
    lines = mainline(spec)
    own, borrowed = branches.own_commits(repo, sha, base.sha, lines)
    return replace(
        known,
        based=True,
        own=tuple(c.short for c in own),
        borrowed=tuple(c.short for c in borrowed),
        borrowed_from=tuple(branches.holders(repo, borrowed, lines)),
    )


def is_hotfix(conn: Connection, service: ServiceRecord, sha: str, ref: str) -> bool:
    """True when the service has a hotfix policy and ``sha`` is a hotfix by ancestry."""
    if spec_of(service.config_text).hotfix is None:
        return False
    return facts(conn, GitRepo(Path(service.repo_path)), service, sha, ref).qualifies


def check_claim(conn: Connection, repo: GitRepo, service: ServiceRecord, environment: str, sha: str, ref: str) -> None:
    """A ref named like a hotfix branch going to the hotfix environment must be a hotfix."""
    spec = spec_of(service.config_text)
    if spec.hotfix is None or environment != spec.hotfix.environment:
        return
    found = facts(conn, repo, service, sha, ref, environment)
    refusal = claim_refusal(found, start_command(spec, ref))
    if refusal is not None:
        raise Conflict(refusal, fix=start_command(spec, ref))


@dataclass(frozen=True)
class Started:
    service: str
    environment: str
    branch: str
    base_sha: str
    base_version: str
    created: bool
    pushed: bool
    next_steps: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "environment": self.environment,
            "branch": self.branch,
            "base_sha": self.base_sha,
            "base_version": self.base_version,
            "created": self.created,
            "pushed": self.pushed,
            "next_steps": list(self.next_steps),
        }


def start(rt: Runtime, user: User, service: str | None, environment: str, name: str) -> Started:
    """Create ``hotfix/NAME`` at the release serving in ``environment`` and push it to origin."""
    with rt.db.read() as conn:
        svc = service_store.pick_service(conn, service)
    spec = spec_of(svc.config_text)
    spec.environment(environment)
    if not user.has_role(*STARTERS):
        reason = f"{user.name} may not start a hotfix; only {', '.join(STARTERS)} may"
        raise refuse(rt, user.name, "hotfix.start", f"{svc.name}/{environment}", reason)
    hotfix = policy(spec)
    branch = name if name.startswith(hotfix.branch_prefix) else hotfix.branch_prefix + name
    repo = GitRepo(Path(svc.repo_path))
    branches.check_branch_name(repo, branch)
    if svc.source != svc.repo_path:
        repo.fetch()
    with rt.db.read() as conn:
        base = store.current_release(conn, svc.id, environment)
        version = store.serving_version(conn, svc.id, base) if base else None
    if base is None or version is None:
        raise Conflict(f"nothing serves in {environment} yet, so there is no release to fix", fix="deploy one first")
    with repo.lock():
        created = branches.create_branch(repo, branch, base.sha)
    pushed = branches.push_branch(repo, branch, base.sha)
    steps = (
        f"git fetch && git switch {branch}",
        "make the minimal fix, commit it, and push the branch",
        f"conveyor deploy staging --ref {branch}   (test it in staging)",
        f"conveyor why {hotfix.environment} --ref {branch}   (the hotfix facts and what is still needed)",
        f"conveyor deploy {hotfix.environment} --ref {branch}   (add --emergency --reason T outside the window)",
        "after it serves, Conveyor merges it back into " + (", ".join(hotfix.merge_back) or "no branch (merge_back)"),
    )
    now = rt.clock.now()
    with rt.db.begin() as conn:
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action="hotfix.started",
            subject=f"{svc.name}/{branch}",
            details={
                "service": svc.name,
                "environment": environment,
                "branch": branch,
                "base": version,
                "base_sha": base.sha,
                "created": created,
                "pushed": pushed,
            },
        )
    return Started(svc.name, environment, branch, base.sha, version, created, pushed, steps)
