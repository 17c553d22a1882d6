"""The ``local`` target: the agent on this host runs the instances and switches traffic.

A deploy is an operation on the agent, named after the deployment, so that a server that died and
runs the step again attaches to the operation already under way instead of starting another.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from conveyor.agent.client import AgentClient, ensure_agent, environment_key
from conveyor.agent.protocol import (
    EnvironmentConfig,
    EnvironmentState,
    HealthBody,
    MaintenanceBody,
    Operation,
    OperationBody,
    ReleaseBody,
    SwitchBody,
)
from conveyor.domain.process_env import parse_names, release_environment
from conveyor.spec import LocalTarget as LocalTargetSpec
from conveyor.store.records import ReleaseRecord
from conveyor.targets.base import StepOutcome, TargetContext, register

POLL_SECONDS = 0.05


def _key(ctx: TargetContext) -> str:
    return environment_key(ctx.service.name, ctx.deployment.environment)


def agent_config(spec: LocalTargetSpec) -> EnvironmentConfig:
    """The router the agent runs for an environment with this target."""
    return EnvironmentConfig(port=spec.port, host=spec.host, router=spec.router)


def instance_env(ctx: TargetContext, release: ReleaseRecord, workdir: Path) -> dict[str, str]:
    """The release's env for its instances: what the operator passes (instance_pass_env), the
    service's env, the CONVEYOR_* variables that describe the release; nothing else of the server's."""
    pass_env = parse_names(ctx.settings.instance_pass_env)
    service_env = {**ctx.spec.env, **ctx.env_spec.env}
    return release_environment(os.environ, pass_env, service_env, ctx.command_env(release, workdir))


class LocalTarget:
    def _spec(self, ctx: TargetContext) -> LocalTargetSpec:
        spec = ctx.env_spec.target
        assert isinstance(spec, LocalTargetSpec)
        return spec

    def _agent(self, ctx: TargetContext) -> AgentClient:
        agent = ensure_agent(ctx.settings.home)
        agent.configure(_key(ctx), agent_config(self._spec(ctx)))
        return agent

    def _state(self, ctx: TargetContext) -> EnvironmentState:
        return self._agent(ctx).state(_key(ctx))

    def warm_workdir(self, ctx: TargetContext, release: ReleaseRecord) -> Path | None:
        """The built worktree the warm instances of ``release`` run from, when it is warm."""
        warm = self._state(ctx).warm
        if warm is not None and warm.version == release.version and warm.sha == release.sha and warm.workdir:
            return Path(warm.workdir)
        return None

    def _serving(self, ctx: TargetContext, release: ReleaseRecord) -> bool:
        active = self._state(ctx).active
        return active is not None and active.serving(release.version, release.sha)

    def _switch(self, ctx: TargetContext, agent: AgentClient, op_id: str, release: ReleaseRecord) -> Operation | None:
        """A quick rollback when ``release`` is warm; None when it is not (the full path starts it again)."""
        body = SwitchBody(
            id=op_id,
            version=release.version,
            sha=release.sha,
            quick_rollback=ctx.env_spec.quick_rollback,  # the release switched away from stays warm
        )
        return agent.switch(_key(ctx), body)

    def _operate(self, ctx: TargetContext, op_id: str, release: ReleaseRecord, cancellable: bool) -> StepOutcome:
        if not ctx.spec.run:
            return StepOutcome(False, "a local target needs the service's `run` command in conveyor.yml")
        agent = self._agent(ctx)
        key = _key(ctx)
        if release.id != (ctx.release.id if ctx.release else None) or ctx.deployment.kind == "rollback":
            switched = self._switch(ctx, agent, op_id, release)
            if switched is not None:
                return self._follow(ctx, agent, key, switched, cancellable)
        spec, env_spec = self._spec(ctx), ctx.env_spec
        if release.sha == ctx.deployment.sha:
            workdir = ctx.workdir()  # prepared (and built) by this deployment's prepare step
        else:  # a restore: the release that served, from the worktree it was built in
            if self._serving(ctx, release):
                return StepOutcome(True, f"{release.version} is still serving")
            workdir, built = ctx.built_workdir(release, "restore-build")
            if not built.ok:
                return built
        health = ctx.spec.health
        body = OperationBody(
            id=op_id,
            release=ReleaseBody(
                version=release.version,
                sha=release.sha,
                workdir=str(workdir),
                command=ctx.spec.run,
                env=instance_env(ctx, release, workdir),
            ),
            replicas=spec.replicas,
            strategy=env_spec.rollout.strategy,
            max_surge=env_spec.rollout.max_surge,
            quick_rollback=env_spec.quick_rollback,
            health=HealthBody(
                path=health.path, interval=health.interval, successes=health.successes, timeout=health.timeout
            ),
        )
        return self._follow(ctx, agent, key, agent.operate(key, body), cancellable)

    def _follow(
        self, ctx: TargetContext, agent: AgentClient, key: str, op: Operation, cancellable: bool
    ) -> StepOutcome:
        cancelled = False
        while op.state == "running":
            if cancellable and not cancelled and ctx.cancel_requested():
                agent.cancel(key, op.id)
                cancelled = True
            time.sleep(POLL_SECONDS)
            op = agent.operation(key, op.id)
        output = "\n".join(op.log)
        return StepOutcome(op.state == "succeeded", op.message, output, cancelled=op.state == "cancelled")

    def deploy(self, ctx: TargetContext) -> StepOutcome:
        assert ctx.release is not None
        return self._operate(ctx, f"{ctx.deployment.id}:rollout", ctx.release, cancellable=True)

    def restore(self, ctx: TargetContext, release: ReleaseRecord) -> StepOutcome:
        return self._operate(ctx, f"{ctx.deployment.id}:restore", release, cancellable=False)


def set_maintenance(home: Path, service: str, environment: str, spec: LocalTargetSpec, on: bool) -> EnvironmentState:
    """Turn an environment's maintenance page on or off (503 with Retry-After for every request)."""
    agent = ensure_agent(home)
    key = environment_key(service, environment)
    agent.configure(key, agent_config(spec))
    return agent.maintenance(key, MaintenanceBody(on=on))


register("local", LocalTarget)
