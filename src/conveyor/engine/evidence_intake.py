"""Evidence arriving: approvals, checklist ticks, sign-offs, CI checks and reviews. Each is checked
against the policy (refused actions are audited and change nothing), recorded, audited, and wakes
the deployments waiting on it."""

from __future__ import annotations

from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth.policy import may_approve, may_approve_emergency, may_tick, may_verify
from conveyor.auth.users import User
from conveyor.domain.deployment import DeploymentState
from conveyor.engine import nudges
from conveyor.errors import Conflict, InvalidInput
from conveyor.gates.schedule import emergency_approvers
from conveyor.runtime import Runtime
from conveyor.spec import EnvironmentSpec
from conveyor.store import deployments as store
from conveyor.store import evidence
from conveyor.store import services as service_store
from conveyor.store.evidence import Provenance
from conveyor.store.records import DeploymentRecord
from conveyor.vcs.git import GitRepo

CHECK_STATES = ("success", "failure", "pending")


def require_reporter(rt: Runtime, user: User, what: str, subject: str) -> None:
    """Checks and reviews come from integrations holding a reporter role, not from people."""
    allowed = tuple(r.strip() for r in rt.settings.evidence_reporter_roles.split(",") if r.strip())
    if not any(user.has_role(r) for r in allowed):
        reason = f"{user.name} may not report {what}s; only {', '.join(allowed) or 'no role'} may (CI integrations)"
        raise refuse(rt, user.name, f"report {what}", subject[:64], reason)


def _check_sha(sha: str) -> None:
    if len(sha) < 7 or any(c not in "0123456789abcdef" for c in sha.lower()):
        raise InvalidInput(f"{sha!r} is not a commit SHA", fix="pass the full 40-character SHA")


def commit_author(repo: GitRepo, sha: str, reviewer: str) -> tuple[str, str]:
    """The commit's full SHA, and its author as the reviews gate compares it: the reviewer's own
    name when the reviewer is the git author (by name, e-mail or the e-mail's local part), else the
    author's e-mail."""
    _check_sha(sha)
    try:
        full = repo.resolve(sha.lower())
        name, email = repo.commit_author(full)
    except InvalidInput:
        raise InvalidInput(f"{sha} is not a commit of the service", fix="pass a commit of its repository") from None
    ids = {name.casefold(), email.casefold(), email.partition("@")[0].casefold()} - {""}
    return full, reviewer if reviewer.casefold() in ids else (email or name)


def _provenance(origin: Provenance) -> dict[str, object]:
    if origin.repository is None:
        return {}
    at = origin.event_at.isoformat() if origin.event_at else None
    return {"repository": origin.repository, "event_at": at, "delivery": origin.delivery_id}


REVIEW_STATES = ("approved", "changes_requested", "commented", "dismissed")


def _deployment_env(rt: Runtime, deployment_id: str) -> tuple[DeploymentRecord, EnvironmentSpec]:
    with rt.db.begin() as conn:
        d = store.get_deployment(conn, deployment_id)
        service = service_store.get_service_by_id(conn, d.service_id)
    return d, rt.spec_of(service.config_text).environment(d.environment)


def approve(rt: Runtime, deployment_id: str, user: User, comment: str | None) -> DeploymentRecord:
    d, env = _deployment_env(rt, deployment_id)
    decision = may_approve(user.name, user.roles, d.actor, d.environment, env)
    if not decision.allowed and d.emergency and env.gates.schedule is not None:
        emergency = may_approve_emergency(user.name, user.roles, d.actor, d.environment, emergency_approvers(env))
        decision = emergency if emergency.allowed or env.gates.approval is None else decision
    if not decision.allowed:
        raise refuse(rt, user.name, "approve", d.id, decision.reason)
    if d.state != DeploymentState.PENDING:
        raise Conflict(f"deployment {d.id[:8]} is {d.state}, not waiting for approval")
    now = rt.clock.now()
    with rt.db.begin() as conn:
        evidence.add_approval(conn, d.id, d.sha, user.name, list(user.roles), comment, now)
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action="deployment.approved",
            subject=d.id,
            details={"sha": d.sha, "comment": comment, "roles": list(user.roles), "emergency": d.emergency},
        )
    nudges.nudge([d.id])
    with rt.db.begin() as conn:
        return store.get_deployment(conn, d.id)


def tick(rt: Runtime, deployment_id: str, item: str, user: User) -> DeploymentRecord:
    d, env = _deployment_env(rt, deployment_id)
    decision = may_tick(user.name, user.roles, d.environment, env)
    if not decision.allowed:
        raise refuse(rt, user.name, "tick", d.id, decision.reason)
    items = env.gates.checklist
    if item not in items:
        raise InvalidInput(f"{item!r} is not on the {d.environment} checklist", fix=f"tick one of: {', '.join(items)}")
    if d.state != DeploymentState.PENDING:
        raise Conflict(f"deployment {d.id[:8]} is {d.state}; its checklist is closed")
    now = rt.clock.now()
    with rt.db.begin() as conn:
        if evidence.tick(conn, d.id, item, user.name, now):
            audit.append(conn, at=now, actor=user.name, action="checklist.ticked", subject=d.id, details={"item": item})
    nudges.nudge([d.id])
    with rt.db.begin() as conn:
        return store.get_deployment(conn, d.id)


def verify(rt: Runtime, user: User, environment: str, sha: str, service_name: str | None) -> dict[str, str]:
    """Record "verified in ENVIRONMENT" for a commit that succeeded there."""
    with rt.db.begin() as conn:
        service = service_store.pick_service(conn, service_name)
    env = rt.spec_of(service.config_text).environment(environment)
    decision = may_verify(user.name, user.roles, environment, env)
    if not decision.allowed:
        raise refuse(rt, user.name, "verify", f"{service.name}/{environment}", decision.reason)
    with rt.db.begin() as conn:
        runs = [r for r in evidence.runs_for(conn, service.id, sha) if r.environment == environment]
    if not any(r.state == "succeeded" for r in runs):
        raise Conflict(
            f"{sha[:12]} has no succeeded deployment in {environment} to verify",
            fix=f"deploy it to {environment} first",
        )
    now = rt.clock.now()
    with rt.db.begin() as conn:
        evidence.add_verification(conn, service.id, sha, environment, user.name, now)
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action="environment.verified",
            subject=f"{service.name}/{environment}",
            details={"sha": sha},
        )
    nudges.nudge_sha(rt, sha)
    return {"service": service.name, "environment": environment, "sha": sha, "verified_by": user.name}


def report_check(
    rt: Runtime, reporter: str, sha: str, name: str, state: str, url: str | None, origin: Provenance = Provenance()
) -> None:
    if state not in CHECK_STATES:
        raise InvalidInput(f"check state {state!r} is not known", fix=f"use one of: {', '.join(CHECK_STATES)}")
    _check_sha(sha)
    now = rt.clock.now()
    with rt.db.begin() as conn:
        evidence.record_check(conn, sha.lower(), name, state, url, reporter, now, origin)
        audit.append(
            conn,
            at=now,
            actor=reporter,
            action="check.reported",
            subject=sha.lower(),
            details={"name": name, "state": state, "url": url, **_provenance(origin)},
        )
    nudges.nudge_sha(rt, sha.lower())


def report_review(
    rt: Runtime,
    reporter: str,
    *,
    sha: str,
    reviewer: str,
    author: str,
    state: str,
    source: str,
    pr_number: int | None = None,
    origin: Provenance = Provenance(),
) -> None:
    if state not in REVIEW_STATES:
        raise InvalidInput(f"review state {state!r} is not known", fix=f"use one of: {', '.join(REVIEW_STATES)}")
    now = rt.clock.now()
    with rt.db.begin() as conn:
        evidence.record_review(
            conn,
            sha=sha,
            reviewer=reviewer,
            author=author,
            state=state,
            source=source,
            at=now,
            pr_number=pr_number,
            origin=origin,
        )
        audit.append(
            conn,
            at=now,
            actor=reporter,
            action="review.recorded",
            subject=sha,
            details={"reviewer": reviewer, "author": author, "state": state, "pr": pr_number, **_provenance(origin)},
        )
    nudges.nudge_sha(rt, sha)


def record_merge(
    rt: Runtime,
    repository: str,
    number: int,
    head_sha: str,
    merge_sha: str | None,
    author: str,
    origin: Provenance = Provenance(),
) -> None:
    now = rt.clock.now()
    with rt.db.begin() as conn:
        evidence.record_pull_request(
            conn,
            repository,
            number,
            head_sha,
            merge_sha,
            author,
            now,
            repository_id=origin.repository_id,
            event_at=origin.event_at,
        )
    if merge_sha:
        nudges.nudge_sha(rt, merge_sha)
