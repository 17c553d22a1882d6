"""The gates for deploying a ref, without deploying: one evaluation behind ``conveyor why``
(GET /api/v1/why) and the dashboard's deploy form and confirm step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from conveyor.auth.users import User
from conveyor.domain.evidence import GateResult
from conveyor.domain.horizon import within_calendar
from conveyor.engine.evidence import evaluate, gather
from conveyor.engine.history import superseded
from conveyor.engine.hotfix import facts, start_command
from conveyor.engine.regression import warning
from conveyor.runtime import Runtime
from conveyor.store import services as service_store
from conveyor.store.records import ServiceRecord
from conveyor.vcs.git import GitRepo


@dataclass(frozen=True)
class Answer:
    service: ServiceRecord
    environment: str
    ref: str
    sha: str
    subject: str
    gates: list[GateResult]
    at: datetime

    @property
    def deployable(self) -> bool:
        return all(g.passed for g in self.gates)


def why(rt: Runtime, user: User, service: str | None, environment: str, ref: str, at: datetime | None = None) -> Answer:
    """Every gate for ``ref`` to ``environment`` as ``user``, now or ``at``. Raises for an unknown
    service, environment or ref, and an ``at`` outside the years the calendar covers."""
    if at is not None:
        within_calendar(at, "at")
    with rt.db.read() as conn:
        svc = service_store.pick_service(conn, service)
    rt.spec_of(svc.config_text).environment(environment)
    repo = GitRepo(Path(svc.repo_path))
    sha = repo.resolve(ref)
    subject = repo.commit_message(sha).split("\n", 1)[0]
    with rt.db.read() as conn:
        ev = gather(
            conn,
            rt,
            svc,
            environment=environment,
            sha=sha,
            ref=ref,
            requester=user.name,
            requester_roles=user.roles,
            at=at,
        )
        behind = superseded(conn, repo, svc, environment, sha)
        missing = warning(conn, repo, svc, environment, sha) if behind is None else None
        hotfix = facts(conn, repo, svc, sha, ref, environment) if rt.spec_of(svc.config_text).hotfix else None
    gates = evaluate(rt, svc, ev)
    if hotfix is not None:  # the hotfix facts: base, commits, reviews needed; a false claim is refused
        refused = hotfix.claimed and not hotfix.qualifies and environment == hotfix.environment
        reason = hotfix.summary() + (
            f"; make one with `{start_command(rt.spec_of(svc.config_text), ref)}`" if refused else ""
        )
        gates = [*gates, GateResult("hotfix", not refused, reason, hotfix.as_json(), waitable=False)]
    if behind is not None:  # the request would be refused with this sentence: say it here too
        gates = [*gates, GateResult("history", False, behind, waitable=False)]
    elif missing is not None:  # a warning: the deploy may go, and drops these
        gates = [*gates, GateResult("history", True, f"warning: {missing}", {"warning": True})]
    return Answer(svc, environment, ref, sha, subject, gates, ev.now)
