"""Feature flags: every service's flags by environment, with On / Off / Kill and the rollout
percentage for those allowed (the rollout form posts to the flag page's route, web/flag.py).
The buttons post to the same flag service function as the API (``flags.service.switch``), so the
policy check, the audit, the ruleset version bump and the push to SDKs all happen the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from conveyor.errors import NotFound
from conveyor.flags import policy, store
from conveyor.flags import service as ops
from conveyor.flags.live import live_of
from conveyor.flags.model import EnvState, is_rollout
from conveyor.store import services as service_store
from conveyor.web.pages import PageRoute, page, runtime
from conveyor.web.session import PostDep, SessionDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)

DONE = {"on": "turned on", "off": "turned off", "kill": "killed (off)"}


@dataclass(frozen=True)
class Cell:
    environment: str
    enabled: bool
    rollout: int | None  # the rollout strategy's percent (the first one without constraints)
    may_change: bool
    may_kill: bool


def rollout_of(state: EnvState) -> int | None:
    return next((s.rollout for s in state.strategies if is_rollout(s)), None)


@router.get("/flags")
def flags_page(
    request: Request,
    session: SessionDep,
    done: str = Query("", max_length=8),
    flag: str = Query("", max_length=128),
    service: str = Query("", max_length=64),
    env: str = Query("", max_length=32),
    percent: int | None = Query(None, ge=0, le=100),
) -> Response:
    rt, user = runtime(request), session.user
    boards = []
    with rt.db.read() as conn:
        for svc in service_store.list_services(conn):
            envs = ops.environments(rt, svc)
            allowed = {
                name: (
                    policy.may_change(user.name, user.roles, name, spec).allowed,
                    policy.may_kill(user.name, user.roles, name, spec).allowed,
                )
                for name, spec in envs.items()
            }
            flags = store.list_flags(conn, svc.id)
            states = store.get_states(conn, [f.id for f in flags])
            rows = []
            for f in flags:
                cells = []
                for name in envs:
                    state = states.get((f.id, name), store.StateRecord(name, EnvState())).state
                    cells.append(Cell(name, state.enabled, rollout_of(state), *allowed[name]))
                rows.append((f, cells))
            boards.append({"service": svc.name, "environments": list(envs), "rows": rows})
    done_text = f"rollout set to {percent}%" if done == "rollout" and percent is not None else DONE.get(done)
    message = f"{service}/{flag} {done_text} in {env}." if done_text and flag and env else None
    return page(request, "flags.html", {"boards": boards, "message": message})


@router.post("/flags/{key}/{environment}/{action}")
def flags_switch(
    key: str,
    environment: str,
    action: str,
    request: Request,
    session: PostDep,
    service: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    if action not in DONE:
        raise NotFound(f"no flag action {action!r}", fix="use on, off or kill")
    rt = runtime(request)
    notify = live_of(request.app.state, rt).notify
    result = ops.switch(rt, session.user, notify, (key, service or None, environment), action, reason.strip() or None)
    query = urlencode({"done": action, "flag": result["key"], "service": result["service"], "env": environment})
    return RedirectResponse(f"/flags?{query}", status_code=303)
