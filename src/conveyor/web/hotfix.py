"""Start a hotfix from the dashboard (docs/hotfix.md): under an environment of a service's page, a
form names the branch; posting it does what ``conveyor hotfix start ENV NAME`` does
(``engine/hotfix.py: start``, which checks the role again and audits a refusal) and shows the
branch and the next steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from starlette.concurrency import run_in_threadpool

from conveyor.auth.users import User
from conveyor.engine import hotfix
from conveyor.errors import Forbidden
from conveyor.runtime import Runtime
from conveyor.store import deployments as store
from conveyor.store import services as service_store
from conveyor.store.records import ServiceRecord
from conveyor.web.pages import PageRoute, page, runtime
from conveyor.web.session import PostDep, SessionDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def may_start(user: User) -> bool:
    """Who sees "Start a hotfix": the roles ``hotfix.start`` accepts."""
    return user.has_role(*hotfix.STARTERS)


@dataclass(frozen=True)
class Base:
    """The release a hotfix started in an environment is cut from."""

    version: str
    sha: str


def base_of(conn: Any, service: ServiceRecord, environment: str) -> Base | None:
    current = store.current_release(conn, service.id, environment)
    return Base(store.serving_version(conn, service.id, current), current.sha) if current else None


def _form(rt: Runtime, user: User, service: str, environment: str) -> dict[str, Any]:
    with rt.db.read() as conn:
        svc = service_store.get_service(conn, service)
        base = base_of(conn, svc, environment)
    spec = hotfix.spec_of(svc.config_text)
    spec.environment(environment)
    if not may_start(user):
        raise Forbidden(
            f"{user.name} may not start a hotfix; only {', '.join(hotfix.STARTERS)} may",
            fix="ask an engineer, a release manager or a manager",
        )
    policy = hotfix.policy(spec)
    return {"svc": svc, "environment": environment, "base": base, "policy": policy}


@router.get("/hotfixes/new")
def new_hotfix(request: Request, session: SessionDep, service: str, environment: str) -> Response:
    return page(request, "hotfix_new.html", _form(runtime(request), session.user, service, environment))


@router.post("/hotfixes")
async def start_hotfix(
    request: Request,
    session: PostDep,
    service: Annotated[str, Form(max_length=64)],
    environment: Annotated[str, Form(max_length=32)],
    name: Annotated[str, Form(min_length=1, max_length=100)],
) -> Response:
    rt, user = runtime(request), session.user
    started = await run_in_threadpool(hotfix.start, rt, user, service, environment, name.strip())
    return page(request, "hotfix_started.html", {"started": started})
