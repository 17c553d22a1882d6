"""No silent regression: a deploy whose commit lacks commits the environment's serving release
has (a hotfix not merged back, a newer release) says so before it starts. Production (the hotfix
environment) refuses unless a release manager overrode it with a reason for that commit; other
environments warn. Rollbacks never come here. A cherry-picked equivalent (same patch-id) counts as
present (docs/hotfix.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection

from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth.users import User
from conveyor.engine.hotfix import production, spec_of
from conveyor.errors import InvalidInput
from conveyor.runtime import Runtime
from conveyor.store import deployments as store
from conveyor.store import hotfix_log
from conveyor.store import services as service_store
from conveyor.store.records import ReleaseRecord, ServiceRecord
from conveyor.vcs import branches
from conveyor.vcs.git import Commit, GitRepo

SHOWN = 8  # commits named in one sentence
OVERRIDERS = ("release_manager",)


@dataclass(frozen=True)
class Missing:
    """What the serving release has that the commit to deploy lacks."""

    environment: str
    serving: ReleaseRecord
    version: str
    sha: str
    commits: tuple[Commit, ...]
    labels: dict[str, str]  # commit sha -> what it is (a hotfix not merged back)
    refuses: bool  # the environment refuses (production) rather than warns

    def sentence(self) -> str:
        named = []
        for c in self.commits[:SHOWN]:
            label = f" [{self.labels[c.sha]}]" if c.sha in self.labels else ""
            named.append(f"{c.short} {c.subject!r}{label}")
        more = f" and {len(self.commits) - SHOWN} more" if len(self.commits) > SHOWN else ""
        return (
            f"missing commits: {self.environment} serves {self.version} ({self.serving.sha[:12]}), which has "
            f"{len(self.commits)} commit(s) that {self.sha[:12]} lacks: {'; '.join(named)}{more}"
        )

    def refusal(self) -> str:
        return (
            f"{self.sentence()}; deploying it would drop them. Merge them in first, or a release manager "
            f'overrides: `conveyor allow-missing {self.environment} --ref {self.sha[:12]} --reason "..."`'
        )


def missing(conn: Connection, repo: GitRepo, service: ServiceRecord, environment: str, sha: str) -> Missing | None:
    """The commits the serving release of ``environment`` has that ``sha`` lacks, or None."""
    current = store.current_release(conn, service.id, environment)
    if current is None or current.sha == sha:
        return None
    try:
        lacking = branches.missing_from(repo, sha, current.sha)
    except InvalidInput:
        return None  # a commit this clone lacks: the start fails with that reason
    if not lacking:
        return None
    labels: dict[str, str] = {}
    for item in hotfix_log.pending(conn, service.name):
        for c in lacking:
            if c.sha not in labels and repo.is_ancestor(c.sha, item.sha):
                labels[c.sha] = f"hotfix {item.version or item.sha[:12]} not merged back into {item.branch}"
    refuses = environment == production(spec_of(service.config_text))
    version = store.serving_version(conn, service.id, current)
    return Missing(environment, current, version, sha, tuple(lacking), labels, refuses)


def refusal(conn: Connection, repo: GitRepo, service: ServiceRecord, environment: str, sha: str) -> str | None:
    """The refusal for deploying ``sha`` to production over missing commits, unless overridden."""
    found = missing(conn, repo, service, environment, sha)
    if found is None or not found.refuses or overridden(conn, service, found):
        return None
    return found.refusal()


def overridden(conn: Connection, service: ServiceRecord, found: Missing) -> bool:
    """True when a release manager accepted losing every one of ``found``'s commits."""
    lost = {c.sha for c in found.commits}
    return any(lost <= accepted for accepted in hotfix_log.overrides(conn, service.name, found.environment, found.sha))


def warning(conn: Connection, repo: GitRepo, service: ServiceRecord, environment: str, sha: str) -> str | None:
    """The warning for an environment that does not refuse, or None."""
    found = missing(conn, repo, service, environment, sha)
    return None if found is None or found.refuses else found.sentence()


def allow_missing(
    rt: Runtime, user: User, service: str | None, environment: str, ref: str, reason: str
) -> dict[str, object]:
    """A release manager accepts, with a reason, that deploying ``ref`` drops the missing commits."""
    with rt.db.read() as conn:
        svc = service_store.pick_service(conn, service)
    spec_of(svc.config_text).environment(environment)
    subject = f"{svc.name}/{environment}"
    if not user.has_role(*OVERRIDERS):
        why = f"{user.name} may not override the missing-commits refusal; only a release manager may"
        raise refuse(rt, user.name, "allow-missing", subject, why)
    if not reason.strip():
        raise InvalidInput("an override needs a reason", fix='add --reason "why dropping them is right"')
    repo = GitRepo(Path(svc.repo_path))
    if svc.source != svc.repo_path:
        repo.fetch()
    sha = repo.resolve(ref)
    with rt.db.read() as conn:
        found = missing(conn, repo, svc, environment, sha)
    commits = [c.sha for c in found.commits] if found else []
    now = rt.clock.now()
    with rt.db.begin() as conn:
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action=hotfix_log.OVERRIDDEN,
            subject=subject,
            details={
                "service": svc.name,
                "environment": environment,
                "ref": ref,
                "sha": sha,
                "missing": commits,
                "reason": reason.strip(),
            },
        )
    return {"service": svc.name, "environment": environment, "sha": sha, "missing": commits, "reason": reason.strip()}
