"""Instance output: what the running app instances of an environment print, from the agent.

Any signed-in user may read it, as any signed-in user may read deployments and their step logs:
every role views every service. The agent's own token never leaves the server."""

from __future__ import annotations

from fastapi import APIRouter, Query

from conveyor.agent.client import instance_output
from conveyor.agent.supervisor import LOG_LINES
from conveyor.api.deps import RuntimeDep, UserDep
from conveyor.api.models import EnvironmentOutput
from conveyor.errors import InvalidInput, NotFound
from conveyor.store import services as service_store

router = APIRouter(prefix="/api/v1", tags=["instances"])


@router.get("/environments/{environment}/logs", response_model=EnvironmentOutput)
def instance_logs(
    environment: str,
    rt: RuntimeDep,
    _user: UserDep,
    service: str | None = None,
    lines: int = Query(200, ge=0, le=LOG_LINES, description="lines of output per instance"),
    instance: int | None = Query(None, ge=1, description="only this instance (its index, from 1)"),
) -> EnvironmentOutput:
    """The running instances of an environment with their recent output (stdout and stderr).

    ``agent`` is false when no agent runs on the server's host. Each instance has ``lines_seen``,
    the count of every line it printed so far: poll and print the lines beyond the last count."""
    with rt.db.read() as conn:
        svc = service_store.pick_service(conn, service)
    env_spec = rt.spec_of(svc.config_text).environment(environment)
    if env_spec.target.kind != "local":
        raise InvalidInput(
            f"{svc.name}.{environment} deploys with the {env_spec.target.kind!r} target: its processes are not "
            "run by Conveyor's agent, so their output is wherever those scripts send it",
            fix="read it where your deploy scripts run the app",
        )
    found = instance_output(rt.settings.home, svc.name, environment, lines)
    instances = found.instances
    if instance is not None:
        instances = [i for i in instances if i.index == instance]
        if not instances:
            count = len(found.instances)
            raise NotFound(
                f"no instance {instance} in {svc.name}.{environment}; it has {count} running",
                fix="leave out --instance to see them all",
            )
    return EnvironmentOutput(service=svc.name, environment=environment, agent=found.agent, instances=instances)
