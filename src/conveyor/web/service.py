"""A service's page: each environment's current release, recent commits of each followed branch
with their CI checks and reviews, the releases and version tags, and the running instances' output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from conveyor.auth.policy import may_deploy
from conveyor.domain.clock import as_utc
from conveyor.domain.evidence import Check
from conveyor.engine.hotfix import production
from conveyor.store import deployments as store
from conveyor.store import evidence
from conveyor.store import services as service_store
from conveyor.store.records import DeploymentRecord, ServiceRecord
from conveyor.store.tables import releases
from conveyor.vcs.git import Commit, GitRepo
from conveyor.web import queries
from conveyor.web.hotfix import may_start
from conveyor.web.instances import LINES as OUTPUT_LINES
from conveyor.web.instances import environment_outputs
from conveyor.web.pages import PageRoute, page, runtime
from conveyor.web.refs import branch_commits
from conveyor.web.session import SessionDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)
COMMITS = 15


@dataclass(frozen=True)
class CommitView:
    commit: Commit
    checks: list[Check]
    approved_by: list[str]  # reviewers whose latest review approves (the author's own excluded)
    changes_requested_by: list[str]


@dataclass(frozen=True)
class EnvView:
    name: str
    branch: str | None
    auto: bool
    serving: queries.Serving | None
    latest: DeploymentRecord | None
    may_deploy: bool


def _commit_views(conn: Any, commits: list[Commit], service: ServiceRecord) -> list[CommitView]:
    out = []
    for c in commits:
        latest: dict[str, Any] = {}
        for r in evidence.reviews_for(conn, c.sha, service):
            latest[r.reviewer] = r
        approved = [n for n, r in latest.items() if r.state == "approved" and n != r.author]
        changes = [n for n, r in latest.items() if r.state == "changes_requested"]
        checks = sorted(evidence.checks_for(conn, c.sha, service).values(), key=lambda k: k.name)
        out.append(CommitView(c, checks, approved, changes))
    return out


@router.get("/services/{name}")
def service_page(name: str, request: Request, session: SessionDep) -> Response:
    rt, user = runtime(request), session.user
    with rt.db.read() as conn:
        svc = service_store.get_service(conn, name)
    spec = rt.spec_of(svc.config_text)
    repo = GitRepo(Path(svc.repo_path))
    history = branch_commits(repo, spec, COMMITS)
    tags = list(reversed(repo.version_tags()))
    with rt.db.read() as conn:
        serving = queries.serving(conn)
        envs = []
        for env_name, env in spec.environments.items():
            latest = store.list_deployments(conn, service_id=svc.id, environment=env_name, limit=1)
            envs.append(
                EnvView(
                    env_name,
                    env.branch,
                    env.auto_deploy,
                    serving.get((svc.id, env_name)),
                    latest[0] if latest else None,
                    may_deploy(user.name, user.roles, env_name, env).allowed,
                )
            )
        branches = {b: _commit_views(conn, commits, svc) for b, commits in history.items()}
        rows = conn.execute(
            select(releases).where(releases.c.service_id == svc.id).order_by(releases.c.id.desc()).limit(30)
        ).all()
    serving_where: dict[str, list[str]] = {}
    for e in envs:
        if e.serving:
            serving_where.setdefault(e.serving.version, []).append(e.name)
    release_rows = [
        {
            "version": r.version,
            "sha": r.sha,
            "tag": r.tag,
            "created_at": as_utc(r.created_at),
            "serving": serving_where.get(r.version, []),
        }
        for r in rows
    ]
    deployable = [e.name for e in envs if e.may_deploy]
    hotfix_env = production(spec)  # "Start a hotfix" sits under it, for those who may
    hotfix_from = hotfix_env if may_start(user) and any(e.name == hotfix_env and e.serving for e in envs) else None
    return page(
        request,
        "service.html",
        {
            "svc": svc,
            "envs": envs,
            "branches": branches,
            "tags": tags,
            "releases": release_rows,
            "deployable": deployable,
            "hotfix_from": hotfix_from,
            "outputs": environment_outputs(rt, svc.name, spec),
            "output_lines": OUTPUT_LINES,
        },
    )
