"""Rollback: pick one of the environment's earlier successful releases (the one the agent keeps
warm is marked: going back to it is a router switch), see what changes, confirm. The request goes
through ``request_rollback``, like ``conveyor rollback`` and POST /api/v1/rollbacks. What changes
includes the schema: a destructive migration since the target is said plainly, with the way to
take the database back too and, to release managers, the override with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from conveyor.auth.policy import may_deploy
from conveyor.auth.users import User
from conveyor.domain.deployment import with_database_plan
from conveyor.domain.schema_gap import gap_sentence
from conveyor.engine.rollbacks import SCHEMA_OVERRIDERS, database_way, request_rollback
from conveyor.engine.schema_rollback import schema_gap, unreported
from conveyor.errors import ConveyorError, Forbidden, InvalidInput
from conveyor.runtime import Runtime
from conveyor.spec import LocalTarget
from conveyor.store import deployments as store
from conveyor.store import services as service_store
from conveyor.store.records import ReleaseRecord
from conveyor.vcs.git import Commit, GitRepo
from conveyor.web import queries
from conveyor.web.pages import PageRoute, page, runtime, templates
from conveyor.web.session import PostDep, SessionDep
from conveyor.web.warm import warm_release

router = APIRouter(route_class=PageRoute, include_in_schema=False)
MAX_COMMITS = 100


@dataclass(frozen=True)
class Candidate:
    release: ReleaseRecord
    success: queries.Success | None
    warm: bool


def _choices(rt: Runtime, user: User, service: str | None, environment: str) -> dict[str, Any]:
    with rt.db.read() as conn:
        svc = service_store.pick_service(conn, service)
    env = rt.spec_of(svc.config_text).environment(environment)
    decision = may_deploy(user.name, user.roles, environment, env)
    if not decision.allowed:
        raise Forbidden(decision.reason.replace("deploy to", "roll back"), fix="ask someone who may deploy there")
    with rt.db.read() as conn:
        current = store.current_release(conn, svc.id, environment)
        earlier = [r for r in store.previous_releases(conn, svc.id, environment) if not current or r.id != current.id]
        successes = queries.last_successes(conn, svc.id, environment)
    warm = warm_release(rt.settings.home, svc.name, environment) if isinstance(env.target, LocalTarget) else None
    candidates = [Candidate(r, successes.get(r.id), warm == (r.version, r.sha)) for r in earlier]
    return {"svc": svc, "env": env, "environment": environment, "current": current, "candidates": candidates}


def changes(repo_path: str, current: ReleaseRecord, target: ReleaseRecord) -> tuple[list[Commit], bool]:
    """Commits serving now that the rollback takes away (newest first), and whether the target was
    found among the last MAX_COMMITS of the current release's history."""
    out: list[Commit] = []
    for c in GitRepo(Path(repo_path)).commits(current.sha, MAX_COMMITS):
        if c.sha == target.sha:
            return out, True
        out.append(c)
    return out, False


@router.get("/rollback")
def rollback_dialog(request: Request, session: SessionDep, environment: str, service: str | None = None) -> Response:
    ctx = _choices(runtime(request), session.user, service, environment)
    chosen = ctx["candidates"][0].release.version if ctx["candidates"] else None
    return page(request, "rollback.html", {**ctx, "chosen": chosen})


@router.get("/rollback/changes")
def rollback_changes(
    request: Request, session: SessionDep, environment: str, to: str, service: str | None = None
) -> Response:
    ctx = _choices(runtime(request), session.user, service, environment)
    target = next((c for c in ctx["candidates"] if c.release.version == to), None)
    commits: list[Commit] = []
    found = False
    if target is not None and ctx["current"] is not None:
        try:
            commits, found = changes(ctx["svc"].repo_path, ctx["current"], target.release)
        except ConveyorError:  # the repository lost the commit: say so rather than fail the dialog
            commits, found = [], False
    context = {**ctx, "target": target, "commits": commits, "found": found, "max": MAX_COMMITS}
    if target is not None:
        context.update(_schema(runtime(request), session.user, ctx, target.release))
    return templates.TemplateResponse(request, "_rollback_changes.html", context)


def _schema(rt: Runtime, user: User, ctx: dict[str, Any], target: ReleaseRecord) -> dict[str, Any]:
    """What the database says about going back to ``target``: the destructive migrations since
    (the rollback is refused over them), how the database could go back too, who may override."""
    svc, env, environment = ctx["svc"], ctx["env"], ctx["environment"]
    with rt.db.read() as conn:
        gap = schema_gap(conn, svc.id, environment, target)
        unlinted = unreported(conn, svc.id, environment, target)
    return {
        "gap": gap,
        "gap_sentence": gap_sentence(target.version, gap) if gap else "",
        "unlinted": unlinted,
        "database_way": database_way(env),
        "database_steps": with_database_plan(smoke=env.smoke is not None),
        "may_override": user.has_role(*SCHEMA_OVERRIDERS),
    }


@router.post("/rollback")
async def rollback(
    request: Request,
    session: PostDep,
    environment: Annotated[str, Form(max_length=32)],
    to: Annotated[str, Form(max_length=128)],
    service: Annotated[str, Form(max_length=64)] = "",
    schema_choice: Annotated[str, Form(max_length=16)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """``schema_choice``: "database" rolls the database back too; "override" (release managers, with a
    reason) rolls the code back alone over a destructive migration; empty: a plain rollback."""
    rt, user = runtime(request), session.user
    if schema_choice not in ("", "database", "override"):
        raise InvalidInput(
            f"schema_choice={schema_choice!r} is not a choice", fix="send database, override, or nothing"
        )
    d = await run_in_threadpool(
        lambda: request_rollback(
            rt,
            environment=environment,
            actor=user.name,
            roles=user.roles,
            service=service or None,
            to=to,
            with_database=schema_choice == "database",
            override_schema=schema_choice == "override",
            reason=reason.strip() or None,
        )
    )
    return RedirectResponse(f"/deployments/{d.id}", status_code=303)
