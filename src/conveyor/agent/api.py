"""The agent's loopback HTTP API (token required): configure environments, run deploy operations,
switch, maintenance mode, state, instance logs, and Prometheus /metrics."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Response

from conveyor.agent.environment import DeployPlan
from conveyor.agent.host import Agent
from conveyor.agent.metrics import render_metrics
from conveyor.agent.protocol import (
    AgentHealth,
    EnvironmentConfig,
    EnvironmentState,
    InstanceOutput,
    MaintenanceBody,
    Operation,
    OperationBody,
    ReleaseWindow,
    Removed,
    SwitchBody,
)
from conveyor.agent.supervisor import LOG_LINES, HealthConfig, ReleaseSpec
from conveyor.errors import ConveyorError


def create_app(agent: Agent) -> FastAPI:
    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        sent = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), agent.token.encode()):
            raise HTTPException(401, "a valid agent token is required (HOME/agent/token)")

    # no /docs, /redoc, /openapi.json: FastAPI serves those outside the token dependency
    app = FastAPI(
        title="Conveyor agent", dependencies=[Depends(authorized)], docs_url=None, redoc_url=None, openapi_url=None
    )

    def env_or_404(key: str) -> Any:
        env = agent.environments.get(key)
        if env is None:
            raise HTTPException(404, f"no environment {key!r} on this agent; PUT /v1/environments/{key} first")
        return env

    @app.get("/v1/health", response_model=AgentHealth)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "pid": agent.pid, "environments": sorted(agent.environments)}

    @app.get("/v1/environments", response_model=list[EnvironmentState])
    async def environments() -> list[dict[str, Any]]:
        return [env.as_json() for env in agent.environments.values()]

    @app.put("/v1/environments/{key}", response_model=EnvironmentState)
    async def configure(key: str, body: EnvironmentConfig) -> dict[str, Any]:
        try:
            env = await agent.configure(key, body.host, body.port, body.router, body.max_body)
        except (ValueError, OSError, ConveyorError) as exc:  # unknown router kind, port taken, no haproxy
            raise HTTPException(400, f"cannot configure {key}: {exc}") from exc
        result: dict[str, Any] = env.as_json()
        return result

    @app.get("/v1/environments/{key}", response_model=EnvironmentState)
    async def state(key: str) -> dict[str, Any]:
        result: dict[str, Any] = env_or_404(key).as_json()
        return result

    @app.post("/v1/environments/{key}/operations", status_code=202, response_model=Operation)
    async def operate(key: str, body: OperationBody) -> dict[str, Any]:
        release = ReleaseSpec(**body.release.model_dump())
        plan = DeployPlan(
            release,
            body.replicas,
            body.strategy,
            body.max_surge,
            body.quick_rollback,
            HealthConfig(**body.health.model_dump()),
        )
        result: dict[str, Any] = env_or_404(key).submit(body.id, plan).as_json()
        return result

    @app.post("/v1/environments/{key}/switch", status_code=202, response_model=Operation)
    async def switch(key: str, body: SwitchBody) -> dict[str, Any]:
        """A quick rollback: 409 unless that release is warm (running, healthy, out of the rotation)."""
        op = env_or_404(key).switch(body.id, body.version, body.sha, body.quick_rollback)
        if op is None:
            raise HTTPException(409, f"{body.version} is not warm in {key}")
        result: dict[str, Any] = op.as_json()
        return result

    @app.get("/v1/environments/{key}/operations/{op_id}", response_model=Operation)
    async def operation(key: str, op_id: str) -> dict[str, Any]:
        op = env_or_404(key).operations.get(op_id)
        if op is None:
            raise HTTPException(404, f"no operation {op_id!r} in {key}")
        result: dict[str, Any] = op.as_json()
        return result

    @app.post("/v1/environments/{key}/operations/{op_id}/cancel", response_model=Operation)
    async def cancel(key: str, op_id: str) -> dict[str, Any]:
        op = env_or_404(key).cancel(op_id)
        if op is None:
            raise HTTPException(404, f"no operation {op_id!r} in {key}")
        result: dict[str, Any] = op.as_json()
        return result

    @app.post("/v1/environments/{key}/maintenance", response_model=EnvironmentState)
    async def maintenance(key: str, body: MaintenanceBody) -> dict[str, Any]:
        env = env_or_404(key)
        env.maintenance, env.retry_after = body.on, body.retry_after
        await env.router.set_maintenance(body.on, body.retry_after)
        result: dict[str, Any] = env.as_json()
        return result

    @app.get("/v1/environments/{key}/logs")
    async def logs(key: str, lines: int = 200) -> dict[str, list[str]]:
        env = env_or_404(key)
        out: dict[str, list[str]] = {}
        for rs in (env.active, env.warm):
            for inst in rs.instances if rs else []:
                out[inst.id] = list(inst.logs)[-lines:]
        return out

    @app.get("/v1/environments/{key}/output", response_model=list[InstanceOutput])
    async def output(key: str, lines: int = Query(200, ge=0, le=LOG_LINES)) -> list[dict[str, Any]]:
        """Each instance (serving, then warm) with its state and its last ``lines`` lines of
        output; ``lines_seen`` counts every line so far, so a poller can print only new ones."""
        result: list[dict[str, Any]] = env_or_404(key).output(lines)
        return result

    @app.get("/v1/environments/{key}/windows", response_model=ReleaseWindow)
    async def window(key: str, release: str, since: float, until: float) -> dict[str, Any]:
        """One release's counts over the seconds starting in [since, until) (epoch seconds)."""
        if not until >= since:
            raise HTTPException(400, f"until ({until}) must not be before since ({since})")
        result: dict[str, Any] = env_or_404(key).window(release, since, until)
        return result

    @app.delete("/v1/environments/{key}", response_model=Removed)
    async def remove(key: str) -> dict[str, str]:
        await agent.remove(key)
        return {"removed": key}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(render_metrics(agent), media_type="text/plain; version=0.0.4")

    return app
