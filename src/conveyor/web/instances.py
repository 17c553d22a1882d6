"""Instance output on the service page: each environment's running instances and their recent
lines, read from the agent through its client, as the API route reads them (any signed-in user). Each
environment's section refreshes itself from ``GET /services/NAME/output/ENV`` every 3 s."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import APIRouter, Request, Response

from conveyor.agent.client import instance_output
from conveyor.agent.protocol import NumberedInstance
from conveyor.errors import ConveyorError, InvalidInput
from conveyor.runtime import Runtime
from conveyor.spec import ServiceSpec
from conveyor.store import services as service_store
from conveyor.web.pages import PageRoute, runtime, templates
from conveyor.web.session import SessionDep

LINES = 40
router = APIRouter(route_class=PageRoute, include_in_schema=False)


@dataclass(frozen=True)
class EnvironmentOutput:
    environment: str
    instances: list[NumberedInstance] = field(default_factory=list)
    note: str = ""  # why there is nothing to show


def one_output(rt: Runtime, service: str, environment: str, lines: int = LINES) -> EnvironmentOutput:
    """The output of one environment that runs on the agent (a ``local`` target)."""
    try:
        found = instance_output(rt.settings.home, service, environment, lines)
    except ConveyorError as exc:  # the agent answered with an error: say so, keep the page
        return EnvironmentOutput(environment, note=exc.message)
    note = ""
    if not found.instances:
        note = "No instance is running." if found.agent else "No agent is running on the server's host."
    return EnvironmentOutput(environment, found.instances, note)


def environment_outputs(rt: Runtime, service: str, spec: ServiceSpec, lines: int = LINES) -> list[EnvironmentOutput]:
    """One entry per environment that runs on the agent (``local`` targets), in config order."""
    return [
        one_output(rt, service, name, lines) for name, env in spec.environments.items() if env.target.kind == "local"
    ]


@router.get("/services/{name}/output/{environment}")
def output_section(name: str, environment: str, request: Request, _session: SessionDep) -> Response:
    """One environment's section, for the page's periodic refresh."""
    rt = runtime(request)
    with rt.db.read() as conn:
        svc = service_store.get_service(conn, name)
    env = rt.spec_of(svc.config_text).environment(environment)
    if env.target.kind != "local":
        raise InvalidInput(
            f"{name}.{environment} does not run on the agent", fix="pick an environment with a local target"
        )
    context = {"o": one_output(rt, svc.name, environment), "service": svc.name, "lines": LINES}
    return templates.TemplateResponse(request, "_instance_output.html", context)
