"""The ``local`` target: the agent on this host runs the instances and switches traffic.

A deploy is an operation on the agent, named after the deployment, so that a server that died and
runs the step again attaches to the operation already under way instead of starting another.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from conveyor.agent.client import AgentClient, ensure_agent, find_agent
from conveyor.domain.process_env import parse_names, release_environment
from conveyor.engine.context import StepContext, StepOutcome
from conveyor.engine.worktrees import ensure_built
from conveyor.errors import ConveyorError
from conveyor.spec import LocalTarget as LocalTargetSpec
from conveyor.store.records import ReleaseRecord
from conveyor.targets.base import register

POLL_SECONDS = 0.05


def environment_key(ctx: StepContext) -> str:
    return f"{ctx.service.name}.{ctx.deployment.environment}"


def instance_env(ctx: StepContext, release: ReleaseRecord, workdir: Path) -> dict[str, str]:
    """The release's env for its instances: what the operator passes (instance_pass_env), the
    service's env, the CONVEYOR_* variables that describe the release; nothing else of the server's."""
    pass_env = parse_names(ctx.runtime.settings.instance_pass_env)
    service_env = {**ctx.spec.env, **ctx.env_spec.env}
    return release_environment(os.environ, pass_env, service_env, ctx.command_env(release, workdir))


class LocalTarget:
    def _spec(self, ctx: StepContext) -> LocalTargetSpec:
        spec = ctx.env_spec.target
        assert isinstance(spec, LocalTargetSpec)
        return spec

    def _agent(self, ctx: StepContext) -> AgentClient:
        spec = self._spec(ctx)
        agent = ensure_agent(ctx.runtime.settings.home)
        agent.call(
            "PUT",
            f"/v1/environments/{environment_key(ctx)}",
            json={"port": spec.port, "host": spec.host, "router": spec.router},
        )
        return agent

    def _state(self, ctx: StepContext) -> dict[str, Any]:
        state: dict[str, Any] = self._agent(ctx).call("GET", f"/v1/environments/{environment_key(ctx)}")
        return state

    def warm_workdir(self, ctx: StepContext, release: ReleaseRecord) -> Path | None:
        """The built worktree the warm instances of ``release`` run from, when it is warm."""
        warm = self._state(ctx).get("warm") or {}
        if warm.get("version") == release.version and warm.get("sha") == release.sha and warm.get("workdir"):
            return Path(warm["workdir"])
        return None

    def _serving(self, ctx: StepContext, release: ReleaseRecord) -> bool:
        active = self._state(ctx).get("active") or {}
        instances = active.get("instances") or []
        return bool(
            active.get("version") == release.version
            and active.get("sha") == release.sha
            and instances
            and all(i.get("state") == "ready" for i in instances)
        )

    def _switch(
        self, ctx: StepContext, agent: AgentClient, op_id: str, release: ReleaseRecord
    ) -> dict[str, Any] | None:
        body = {
            "id": op_id,
            "version": release.version,
            "sha": release.sha,
            "quick_rollback": ctx.env_spec.quick_rollback,  # the release switched away from stays warm
        }
        try:
            result: dict[str, Any] = agent.call("POST", f"/v1/environments/{environment_key(ctx)}/switch", json=body)
        except ConveyorError:  # 409: not warm; the full path below starts it again
            return None
        return result

    def _operate(self, ctx: StepContext, op_id: str, release: ReleaseRecord, cancellable: bool) -> StepOutcome:
        if not ctx.spec.run:
            return StepOutcome(False, "a local target needs the service's `run` command in conveyor.yml")
        agent = self._agent(ctx)
        key = environment_key(ctx)
        if release.id != (ctx.release.id if ctx.release else None) or ctx.deployment.kind == "rollback":
            switched = self._switch(ctx, agent, op_id, release)
            if switched is not None:
                return self._follow(ctx, agent, key, op_id, switched, cancellable)
        spec, env_spec = self._spec(ctx), ctx.env_spec
        if release.sha == ctx.deployment.sha:
            workdir = ctx.workdir()  # prepared (and built) by this deployment's prepare step
        else:  # a restore: the release that served, from the worktree it was built in
            if self._serving(ctx, release):
                return StepOutcome(True, f"{release.version} is still serving")
            workdir, built = ensure_built(ctx, release, "restore-build")
            if not built.ok:
                return built
        health = ctx.spec.health
        body: dict[str, Any] = {
            "id": op_id,
            "release": {
                "version": release.version,
                "sha": release.sha,
                "workdir": str(workdir),
                "command": ctx.spec.run,
                "env": instance_env(ctx, release, workdir),
            },
            "replicas": spec.replicas,
            "strategy": env_spec.rollout.strategy,
            "max_surge": env_spec.rollout.max_surge,
            "quick_rollback": env_spec.quick_rollback,
            "health": {
                "path": health.path,
                "interval": health.interval,
                "successes": health.successes,
                "timeout": health.timeout,
            },
        }
        op = agent.call("POST", f"/v1/environments/{key}/operations", json=body)
        return self._follow(ctx, agent, key, op_id, op, cancellable)

    def _follow(
        self, ctx: StepContext, agent: AgentClient, key: str, op_id: str, op: dict[str, Any], cancellable: bool
    ) -> StepOutcome:
        cancelled = False
        while op["state"] == "running":
            if cancellable and not cancelled and ctx.cancel_requested():
                agent.call("POST", f"/v1/environments/{key}/operations/{op_id}/cancel")
                cancelled = True
            time.sleep(POLL_SECONDS)
            op = agent.call("GET", f"/v1/environments/{key}/operations/{op_id}")
        output = "\n".join(op["log"])
        return StepOutcome(op["state"] == "succeeded", op["message"], output, cancelled=op["state"] == "cancelled")

    def deploy(self, ctx: StepContext) -> StepOutcome:
        assert ctx.release is not None
        return self._operate(ctx, f"{ctx.deployment.id}:rollout", ctx.release, cancellable=True)

    def restore(self, ctx: StepContext, release: ReleaseRecord) -> StepOutcome:
        return self._operate(ctx, f"{ctx.deployment.id}:restore", release, cancellable=False)


def set_maintenance(home: Path, service: str, environment: str, spec: LocalTargetSpec, on: bool) -> dict[str, Any]:
    """Turn an environment's maintenance page on or off (503 with Retry-After for every request)."""
    agent = ensure_agent(home)
    key = f"{service}.{environment}"
    agent.call("PUT", f"/v1/environments/{key}", json={"port": spec.port, "host": spec.host, "router": spec.router})
    result: dict[str, Any] = agent.call("POST", f"/v1/environments/{key}/maintenance", json={"on": on})
    return result


def instance_output(home: Path, service: str, environment: str, lines: int) -> list[dict[str, Any]] | None:
    """Each running instance of the environment with its last ``lines`` lines of output, from the
    agent; None when no agent is running. Never starts an agent: reading must not change anything."""
    agent = find_agent(home)
    if agent is None:
        return None
    try:
        response = agent.http.get(f"/v1/environments/{service}.{environment}/output", params={"lines": lines})
    except httpx.HTTPError:
        return None
    finally:
        agent.http.close()  # one client per call: a poller (`conveyor logs -f`) must not leak sockets
    if response.status_code == 404:  # the agent has not run this environment since it started
        return []
    if response.status_code != 200:
        raise ConveyorError(f"the agent refused the output of {service}.{environment}: {response.text[:300]}")
    instances: list[dict[str, Any]] = response.json()
    return instances


register("local", LocalTarget)
