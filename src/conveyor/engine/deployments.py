"""Asking for deployments: deploy a ref, roll back, cancel. Each checks its input, records the
request (deployment row, planned steps, audit entry) and hands it to the workflow queue."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth.policy import may_deploy
from conveyor.domain.deployment import DeploymentKind, DeploymentState
from conveyor.domain.text import check_single_line
from conveyor.engine import gating, pipeline
from conveyor.engine.evidence import evaluate, gather, has_gates
from conveyor.engine.history import superseded
from conveyor.engine.hotfix import check_claim
from conveyor.engine.merge_back import clear_by
from conveyor.engine.regression import warning
from conveyor.engine.transitions import transition
from conveyor.errors import Conflict, InvalidInput, NotFound
from conveyor.runtime import Runtime
from conveyor.spec.models import EnvironmentSpec
from conveyor.store import deployments as store
from conveyor.store import services as service_store
from conveyor.store.records import DeploymentRecord, ServiceRecord
from conveyor.vcs.git import GitRepo


@dataclass(frozen=True)
class DeployRequest:
    environment: str
    ref: str
    actor: str
    service: str | None = None
    trigger: str = "manual"
    notes: str | None = None
    ticket: str | None = None
    sha: str | None = None  # already resolved (by a trigger)
    roles: tuple[str, ...] = ()  # the requester's roles (a trigger acts for the system)
    emergency: bool = False  # bypass the schedule, once the emergency approver role approves
    reason: str | None = None  # why it is an emergency (required with emergency)
    when_open: bool = False  # outside the schedule: wait for its next opening instead of refusing
    maintenance: bool = False  # maintenance mode on during the migrate step (docs/database.md)


def service_repo(rt: Runtime, service: ServiceRecord, fetch: bool) -> GitRepo:
    """The service's repository, fetched first when it is a clone of a remote and ``fetch``."""
    repo = GitRepo(Path(service.repo_path))
    if fetch and service.source != service.repo_path:
        repo.fetch()
    return repo


def request_deployment(rt: Runtime, req: DeployRequest) -> DeploymentRecord:
    with rt.db.read() as conn:
        service = service_store.pick_service(conn, req.service)
    spec = rt.spec_of(service.config_text)
    env = spec.environment(req.environment)
    if req.trigger == "manual":
        decision = may_deploy(req.actor, req.roles, req.environment, env)
        if not decision.allowed:
            action = "override" if req.emergency else "deploy"
            raise refuse(rt, req.actor, action, f"{service.name}/{req.environment}", decision.reason)
    if req.emergency and not (req.reason or "").strip():
        raise InvalidInput("an emergency deployment needs a reason", fix='add --reason "what is on fire"')
    for what, text in (("notes", req.notes), ("ticket", req.ticket), ("reason", req.reason)):
        check_single_line(text, what)  # they go into one-line announcements
    if req.maintenance:
        check_maintenance(req.environment, env)
    repo = service_repo(rt, service, fetch=req.sha is None)
    sha = req.sha or repo.resolve(req.ref)
    try:
        clear_by(rt, service, repo, req.ref, sha, req.actor)  # a branch tip with a hotfix in it: merged back
        with rt.db.read() as conn:
            check_claim(conn, repo, service, req.environment, sha, req.ref)  # hotfix/x must be a hotfix
            behind = superseded(conn, repo, service, req.environment, sha)
            missing = warning(conn, repo, service, req.environment, sha) if behind is None else None
    except InvalidInput:
        if req.sha is None:
            raise
        behind = missing = None  # a trigger's commit this clone lacks: recorded, and its start fails with the reason
    if behind is not None:  # refused now, with the sentence `why` gives, rather than queued and cancelled
        raise Conflict(behind)
    if not req.emergency and not req.when_open:
        check_schedule_now(rt, service, req, sha)
    gated = has_gates(rt, service, req.environment)
    deployment_id = str(uuid.uuid4())
    now = rt.clock.now()
    with rt.db.begin() as conn:
        store.insert_deployment(
            conn,
            id=deployment_id,
            service_id=service.id,
            environment=req.environment,
            kind=DeploymentKind.DEPLOY,
            ref=req.ref,
            sha=sha,
            state=DeploymentState.PENDING if gated else DeploymentState.QUEUED,
            actor=req.actor,
            trigger=req.trigger,
            now=now,
            plan=env.step_plan(),
            notes=f"EMERGENCY: {req.reason}" + (f" | {req.notes}" if req.notes else "") if req.emergency else req.notes,
            ticket=req.ticket,
            emergency=req.emergency,
            when_open=req.when_open,
            maintenance=req.maintenance,
        )
        audit.append(
            conn,
            at=now,
            actor=req.actor,
            action="deployment.requested",
            subject=deployment_id,
            details={
                "service": service.name,
                "environment": req.environment,
                "ref": req.ref,
                "sha": sha,
                "trigger": req.trigger,
                "notes": req.notes,
                "ticket": req.ticket,
                "emergency": req.emergency,
                "reason": req.reason,
                "when_open": req.when_open,
                "maintenance": req.maintenance,
                **({"warning": missing} if missing else {}),  # commits it drops where that only warns
            },
        )
        record = store.get_deployment(conn, deployment_id)
    if gated:
        gating.start_gate_workflow(record)
    else:
        pipeline.enqueue(record)
    return record


def check_maintenance(environment: str, env: EnvironmentSpec) -> None:
    """``--maintenance`` turns maintenance mode on for the migrate step: it needs both."""
    if env.target.kind != "local":
        raise InvalidInput(
            f"--maintenance: {environment} uses a {env.target.kind!r} target, which has no maintenance mode",
            fix="deploy without --maintenance, or use `target: {kind: local, ...}` (its router serves the 503 page)",
        )
    if env.migrate is None:
        raise InvalidInput(
            f"--maintenance: {environment} has no migrate command, so there is no migration to cover",
            fix="deploy without --maintenance (or add `migrate:` to the environment in conveyor.yml)",
        )


def check_schedule_now(rt: Runtime, service: ServiceRecord, req: DeployRequest, sha: str) -> None:
    """Outside the deploy schedule a plain request is refused at once, saying when it opens."""
    with rt.db.read() as conn:
        ev = gather(
            conn,
            rt,
            service,
            environment=req.environment,
            sha=sha,
            ref=req.ref,
            requester=req.actor,
            requester_roles=req.roles,
        )
    closed = [r for r in evaluate(rt, service, ev) if r.gate == "schedule" and not r.passed]
    if closed:
        raise Conflict(
            f"{req.environment} is closed for deploys: {closed[0].reason}",
            fix="add --when-open to wait for the opening, or --emergency --reason with a manager's approval",
        )


def cancel(rt: Runtime, deployment_id: str, actor: str, roles: tuple[str, ...]) -> DeploymentRecord:
    """Stop a deployment: one that has not started never will; a running one stops at once and
    its environment keeps (or gets back) the release that served before. Its requester, and who
    may deploy to its environment, may cancel it."""
    now = rt.clock.now()
    with rt.db.read() as conn:
        d = store.get_deployment(conn, deployment_id)
        service = service_store.get_service_by_id(conn, d.service_id)
    env = rt.spec_of(service.config_text).environment(d.environment)
    decision = may_deploy(actor, roles, d.environment, env)
    if actor != d.actor and not decision.allowed:
        raise refuse(rt, actor, "cancel", d.id, decision.reason.replace("deploy to", "cancel deployments to"))
    with rt.db.begin() as conn:
        d = store.get_deployment(conn, deployment_id)
        if d.state.finished:
            raise Conflict(f"deployment {d.id} already {d.state}", fix="nothing to cancel")
        store.set_fields(conn, d.id, cancel_requested=True)
        transition(
            conn,
            d.id,
            DeploymentState.CANCELLED,
            now=now,
            actor=actor,
            reason=f"cancelled by {actor} before it started",
            expect=[DeploymentState.PENDING, DeploymentState.QUEUED],
        )
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="deployment.cancel",
            subject=d.id,
            details={"state_then": d.state.value},
        )
        return store.get_deployment(conn, d.id)


def reconcile(rt: Runtime) -> int:
    """Enqueue every unfinished deployment again (a no-op for those whose workflow exists): closes
    the gap between recording a request and enqueueing it if the server died in between."""
    with rt.db.read() as conn:
        active = store.active_deployments(conn)
    for d in active:
        if d.state == DeploymentState.PENDING:
            gating.start_gate_workflow(d)
        else:
            pipeline.enqueue(d)
    return len(active)


def resolve_id(rt: Runtime, prefix: str) -> str:
    """A full deployment id from an unambiguous prefix of at least 6 characters."""
    with rt.db.read() as conn:  # every request naming a deployment: never the write lock
        found = store.find_deployments(conn, prefix) if len(prefix) >= 6 else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise InvalidInput(f"deployment id {prefix!r} is ambiguous", fix="give more characters")
    raise NotFound(f"no deployment with id {prefix!r}", fix="list them with `conveyor history`")
