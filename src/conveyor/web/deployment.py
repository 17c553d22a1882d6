"""A deployment's page: its gates with their live state and reasons, Approve / tick buttons for
those allowed, its monitoring window with the evidence and Accept now / Roll back now for release
managers, its migrations (the lint's findings, and an Acknowledge form for release managers), the
step timeline with live log output, Cancel and Rollback. Actions go through
the engine's own functions (evidence_intake.approve / tick, requests.cancel), which check the
user's rights again and raise Forbidden / Conflict / InvalidInput: those become pages with 403 /
409 / 400 and change nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from conveyor.auth.policy import may_acknowledge_migrations
from conveyor.auth.sessions import COOKIE
from conveyor.auth.users import User
from conveyor.domain.links import links_for
from conveyor.engine import evidence_intake as intake
from conveyor.engine import migration_acks
from conveyor.engine.deployments import cancel, resolve_id
from conveyor.engine.monitoring_end import format_value as value_text
from conveyor.engine.monitoring_people import decide, may_decide
from conveyor.engine.process import read_tail
from conveyor.runtime import Runtime
from conveyor.spec import EnvironmentSpec
from conveyor.store import deployments as store
from conveyor.store import evidence, monitor_samples, notifications
from conveyor.store import services as service_store
from conveyor.store.monitor_samples import Monitoring
from conveyor.store.records import DeploymentRecord, StepRecord
from conveyor.web import live
from conveyor.web.pages import PageRoute, digest, fragment, page, runtime
from conveyor.web.session import PostDep, SessionDep, still_signed_in
from conveyor.web.waiting import allowed

router = APIRouter(route_class=PageRoute, include_in_schema=False)
POLL_SECONDS = 0.25
PARTS = {
    "panel": "_deployment_panel.html",
    "monitoring": "_monitoring.html",
    "migrations": "_migrations.html",
    "steps": "_steps.html",
    "notifications": "_notifications.html",
}


@dataclass(frozen=True)
class StepView:
    step: StepRecord
    output: str


def env_links(d: DeploymentRecord, env: EnvironmentSpec, mon: Monitoring | None) -> list[tuple[str, str]]:
    """The environment's ``links:`` expanded for ``d`` (domain/links.py): a monitored deployment's
    range is a window's length before its switch to the end of its window; else its start to its
    end (30 minutes when it has not ended)."""
    version = d.version or d.sha[:12]
    if mon is not None:
        ends = mon.ended_at or mon.ends_at
        return links_for(env.links, d.service, d.environment, version, mon.switched_at, ends, mon.seconds)
    return links_for(env.links, d.service, d.environment, version, d.started_at or d.created_at, d.finished_at)


def _view(rt: Runtime, user: User, deployment_id: str) -> tuple[dict[str, Any], bool]:
    """Everything the two live parts show, read in one transaction; and whether it is finished."""
    with rt.db.read() as conn:
        d = store.get_deployment(conn, deployment_id)
        steps = store.get_steps(conn, deployment_id)
        service = service_store.get_service_by_id(conn, d.service_id)
        approvals = evidence.approvals_for(conn, d.id)
        ticks = evidence.ticks_for(conn, d.id)
        deliveries = notifications.for_deployment(conn, d.id)
        mon = monitor_samples.get(conn, d.id)
        samples = monitor_samples.samples(conn, d.id) if mon else []
    env = rt.spec_of(service.config_text).environment(d.environment)
    runs = rt.settings.runs_dir / d.id
    views = [
        StepView(s, read_tail(runs / s.name / "output.log", rt.settings.output_tail_bytes) or s.output_tail or "")
        for s in steps
    ]
    allow = allowed(user, d, env, {a.user for a in approvals}, set(ticks))
    context = {
        "d": d,
        "steps": views,
        "allow": allow,
        "env": env,
        "links": env_links(d, env, mon),
        "approvals": approvals,
        "ticks": ticks,
        "deliveries": deliveries,
        "mon": mon,
        "samples": samples,
        "last": samples[-1] if samples else None,
        "may_decide": may_decide(user.name, user.roles, d.environment).allowed,
        "value_text": value_text,
        "migrations": migration_acks.view(rt, d.id) if env.migrate is not None else None,
        "may_acknowledge": may_acknowledge_migrations(user.name, user.roles, d.environment).allowed,
    }
    return context, d.state.finished


def _render(context: dict[str, Any], user: User, csrf: str, ticket_url: str | None) -> dict[str, str]:
    full = {**context, "csrf": csrf, "ticket_url": ticket_url, "user": user}
    return {name: fragment(template, full) for name, template in PARTS.items()}


@router.get("/deployments/{deployment_id}")
def show(deployment_id: str, request: Request, session: SessionDep) -> Response:
    rt = runtime(request)
    full_id = resolve_id(rt, deployment_id)
    context, finished = _view(rt, session.user, full_id)
    parts = _render(context, session.user, session.csrf_token, rt.settings.ticket_url)
    query = "&".join(f"{name}={digest(html)}" for name, html in parts.items())
    return page(request, "deployment.html", {**context, "parts": parts, "live": None if finished else query})


@router.get("/deployments/{deployment_id}/events")
def events(deployment_id: str, request: Request, session: SessionDep) -> StreamingResponse:
    rt = runtime(request)
    full_id = resolve_id(rt, deployment_id)

    def render() -> tuple[dict[str, str], bool]:
        context, finished = _view(rt, session.user, full_id)
        return _render(context, session.user, session.csrf_token, rt.settings.ticket_url), finished

    return live.stream(request, render, POLL_SECONDS, still_signed_in(rt, request.cookies.get(COOKIE)))


async def _act(request: Request, deployment_id: str, action: Callable[[str], object]) -> Response:
    rt = runtime(request)
    full_id = await run_in_threadpool(resolve_id, rt, deployment_id)
    await run_in_threadpool(action, full_id)
    return RedirectResponse(f"/deployments/{full_id}", status_code=303)


@router.post("/deployments/{deployment_id}/approve")
async def approve(deployment_id: str, request: Request, session: PostDep) -> Response:
    rt = runtime(request)
    return await _act(request, deployment_id, lambda i: intake.approve(rt, i, session.user, None))


@router.post("/deployments/{deployment_id}/tick")
async def tick(
    deployment_id: str, request: Request, session: PostDep, item: Annotated[str, Form(max_length=64)]
) -> Response:
    rt = runtime(request)
    return await _act(request, deployment_id, lambda i: intake.tick(rt, i, item, session.user))


@router.post("/deployments/{deployment_id}/cancel")
async def cancel_deployment(deployment_id: str, request: Request, session: PostDep) -> Response:
    rt, user = runtime(request), session.user
    return await _act(request, deployment_id, lambda i: cancel(rt, i, user.name, user.roles))


@router.post("/deployments/{deployment_id}/monitoring/accept")
async def accept_now(
    deployment_id: str, request: Request, session: PostDep, reason: Annotated[str, Form(max_length=2000)]
) -> Response:
    rt, user = runtime(request), session.user
    return await _act(request, deployment_id, lambda i: decide(rt, i, "accept", user.name, user.roles, reason))


@router.post("/deployments/{deployment_id}/monitoring/rollback")
async def roll_back_now(
    deployment_id: str, request: Request, session: PostDep, reason: Annotated[str, Form(max_length=2000)]
) -> Response:
    rt, user = runtime(request), session.user
    return await _act(request, deployment_id, lambda i: decide(rt, i, "rollback", user.name, user.roles, reason))


@router.post("/deployments/{deployment_id}/migrations/acknowledge")
async def acknowledge_migrations(
    deployment_id: str, request: Request, session: PostDep, reason: Annotated[str, Form(max_length=2000)]
) -> Response:
    rt, user = runtime(request), session.user
    return await _act(request, deployment_id, lambda i: migration_acks.acknowledge(rt, i, user, reason))
