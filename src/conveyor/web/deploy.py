"""The deploy form: environment, a commit or tag from a searchable list, notes, ticket, the
checklist. The gates for the picked ref are evaluated as the user picks (the same answer as
``conveyor why``); a confirm step repeats what will happen; then the request goes through the
same function as the API's (``request_deployment``), which checks the user's rights again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from conveyor.auth.policy import may_deploy
from conveyor.auth.users import User
from conveyor.engine import evidence_intake as intake
from conveyor.engine.deployments import DeployRequest, request_deployment
from conveyor.engine.regression import allow_missing
from conveyor.engine.why import why
from conveyor.errors import Forbidden, InvalidInput, NotFound
from conveyor.runtime import Runtime
from conveyor.store import services as service_store
from conveyor.web.missing import missing_commits
from conveyor.web.pages import PageRoute, page, runtime, templates
from conveyor.web.refs import ref_options
from conveyor.web.session import PostDep, SessionDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)
LIMITS = {"service": 64, "environment": 32, "ref": 255, "notes": 4000, "ticket": 64, "reason": 2000}


@dataclass(frozen=True)
class DeployForm:
    service: str
    environment: str
    ref: str
    notes: str
    ticket: str
    checklist: tuple[str, ...]
    when_open: bool
    emergency: bool
    reason: str
    maintenance: bool = False


def read_form(form: FormData) -> DeployForm:
    values: dict[str, str] = {}
    for name, limit in LIMITS.items():
        raw = form.get(name)
        value = raw.strip() if isinstance(raw, str) else ""
        if len(value) > limit:
            raise InvalidInput(f"{name} is longer than {limit} characters", fix="shorten it")
        values[name] = value
    if not values["ref"]:
        raise InvalidInput("no commit or tag was picked", fix="pick one from the list")
    if not values["environment"]:
        raise InvalidInput("no environment was picked", fix="pick one")
    items = tuple(v for v in form.getlist("checklist") if isinstance(v, str))
    return DeployForm(
        service=values["service"],
        environment=values["environment"],
        ref=values["ref"],
        notes=values["notes"],
        ticket=values["ticket"],
        checklist=items,
        when_open=form.get("when_open") in ("on", "true", "1"),
        emergency=form.get("emergency") in ("on", "true", "1"),
        reason=values["reason"],
        maintenance=form.get("maintenance") in ("on", "true", "1"),
    )


def _choose(rt: Runtime, user: User, service: str | None, environment: str | None) -> dict[str, Any]:
    with rt.db.read() as conn:
        services = service_store.list_services(conn)
        if not services:
            raise NotFound("no services yet", fix="add one with `conveyor services add PATH`")
        svc = service_store.get_service(conn, service) if service else services[0]
    spec = rt.spec_of(svc.config_text)
    allowed = [n for n, e in spec.environments.items() if may_deploy(user.name, user.roles, n, e).allowed]
    if environment is None:
        environment = allowed[0] if allowed else next(iter(spec.environments))
    env = spec.environment(environment)
    decision = may_deploy(user.name, user.roles, environment, env)
    return {
        "services": services,
        "svc": svc,
        "spec": spec,
        "env": env,
        "environment": environment,
        "allowed_envs": allowed,
        "decision": decision,
    }


@router.get("/deploy")
def deploy_form(
    request: Request, session: SessionDep, service: str | None = None, environment: str | None = None, ref: str = ""
) -> Response:
    rt = runtime(request)
    ctx = _choose(rt, session.user, service, environment)
    if not ctx["decision"].allowed:
        return page(request, "deploy.html", {**ctx, "options": [], "ref": ""}, 403)
    options = ref_options(ctx["svc"].repo_path, ctx["spec"])
    return page(request, "deploy.html", {**ctx, "options": options, "ref": ref})


@router.get("/deploy/refs")
def refs(request: Request, session: SessionDep, service: str, q: str = "", ref: str = "") -> Response:
    rt = runtime(request)
    with rt.db.read() as conn:
        svc = service_store.get_service(conn, service)
    options = ref_options(svc.repo_path, rt.spec_of(svc.config_text), q[:255])
    return templates.TemplateResponse(request, "_refs.html", {"options": options, "ref": ref, "q": q})


@router.get("/deploy/gates")
def gates(request: Request, session: SessionDep, service: str, environment: str, ref: str = "") -> Response:
    rt = runtime(request)
    user = session.user
    answer = why(rt, user, service, environment, ref) if ref else None
    missing = missing_commits(rt, user, answer.service, environment, answer.sha) if answer else None
    return templates.TemplateResponse(request, "_gates.html", {"answer": answer, "missing": missing})


def _confirmation(rt: Runtime, user: User, form: DeployForm) -> dict[str, Any]:
    ctx = _choose(rt, user, form.service, form.environment)
    if not ctx["decision"].allowed:
        raise Forbidden(ctx["decision"].reason, fix="ask someone who may deploy there")
    unknown = [i for i in form.checklist if i not in ctx["env"].gates.checklist]
    if unknown:
        raise InvalidInput(f"{unknown[0]!r} is not on the {form.environment} checklist")
    answer = why(rt, user, form.service, form.environment, form.ref)
    missing = missing_commits(rt, user, answer.service, form.environment, answer.sha)
    return {**ctx, "form": form, "answer": answer, "missing": missing, "plan": ctx["env"].step_plan()}


@router.post("/deploy/confirm")
async def confirm(request: Request, session: PostDep) -> Response:
    form = read_form(await request.form())
    context = await run_in_threadpool(_confirmation, runtime(request), session.user, form)
    return page(request, "deploy_confirm.html", context)


@router.post("/deploy/allow-missing")
async def override_missing(request: Request, session: PostDep) -> Response:
    """A release manager accepts, with a reason, that this deploy drops the commits production
    serves and the ref lacks (``conveyor allow-missing``); then the confirm step again."""
    rt, user = runtime(request), session.user
    posted = await request.form()
    form = read_form(posted)
    raw = posted.get("override_reason")
    reason = raw.strip() if isinstance(raw, str) else ""
    if len(reason) > LIMITS["reason"]:
        raise InvalidInput(f"the reason is longer than {LIMITS['reason']} characters", fix="shorten it")

    def run() -> dict[str, Any]:
        allowed = allow_missing(rt, user, form.service or None, form.environment, form.ref, reason)
        return {**_confirmation(rt, user, form), "overridden": allowed}

    return page(request, "deploy_confirm.html", await run_in_threadpool(run))


@router.post("/deploy")
async def deploy(request: Request, session: PostDep) -> Response:
    rt, user = runtime(request), session.user
    form = read_form(await request.form())

    def run() -> str:
        ctx = _choose(rt, user, form.service, form.environment)
        unknown = [i for i in form.checklist if i not in ctx["env"].gates.checklist]
        if unknown:  # checked before anything is recorded
            raise InvalidInput(f"{unknown[0]!r} is not on the {form.environment} checklist")
        d = request_deployment(
            rt,
            DeployRequest(
                environment=form.environment,
                ref=form.ref,
                actor=user.name,
                roles=user.roles,
                service=ctx["svc"].name,
                notes=form.notes or None,
                ticket=form.ticket or None,
                emergency=form.emergency,
                reason=form.reason or None,
                when_open=form.when_open,
                maintenance=form.maintenance,
            ),
        )
        for item in form.checklist:
            intake.tick(rt, d.id, item, user)
        return d.id

    deployment_id = await run_in_threadpool(run)
    return RedirectResponse(f"/deployments/{deployment_id}", status_code=303)
