"""What a step sees: the deployment, its service and environment config, the repository, and a
way to run commands durably with the documented CONVEYOR_* variables."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.domain.failures import failure_summary
from conveyor.domain.process_env import STEP_BASICS, allowed, parse_names
from conveyor.engine.process import ProcessResult, run_durable
from conveyor.store import deployments as store
from conveyor.store import services as service_store
from conveyor.store.records import DeploymentRecord, ReleaseRecord, ServiceRecord
from conveyor.targets.base import StepOutcome
from conveyor.vcs.git import GitRepo

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from conveyor.runtime import Runtime
    from conveyor.settings import Settings
    from conveyor.spec import CommandSpec, EnvironmentSpec, ServiceSpec

__all__ = ["StepContext", "StepOutcome", "context_in", "load_context", "outcome_of"]


def outcome_of(result: ProcessResult, what: str, logs_hint: str = "") -> StepOutcome:
    """The outcome of a command: its verdict, exit code and a summary of its output."""
    if result.verdict == "cancelled":
        return StepOutcome(False, f"{what} was stopped: the deployment was cancelled", result.output, True)
    if result.verdict == "timeout":
        return StepOutcome(False, f"{what} timed out and was stopped", result.output)
    if result.exit_code != 0:
        return StepOutcome(False, failure_summary(what, result.exit_code, result.output, logs_hint), result.output)
    return StepOutcome(True, f"{what} succeeded", result.output)


@dataclass(frozen=True)
class StepContext:
    """What a step sees. Satisfies targets.base.TargetContext (everything but ``runtime`` and
    ``repo``), which is all a target gets to use."""

    runtime: Runtime
    deployment: DeploymentRecord
    service: ServiceRecord
    spec: ServiceSpec
    env_spec: EnvironmentSpec
    release: ReleaseRecord | None
    previous: ReleaseRecord | None
    # the step's own writes, made with the record of its end (``write``); None: each at once
    deferred: list[Callable[[Connection], None]] | None = field(default=None, compare=False)

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def repo(self) -> GitRepo:
        return GitRepo(Path(self.service.repo_path))

    def workdir(self, sha: str | None = None) -> Path:
        """The worktree of this deployment (or of another commit, for a restore)."""
        sha = sha or self.deployment.sha
        suffix = "" if sha == self.deployment.sha else f"-{sha[:12]}"
        return self.runtime.settings.worktrees_dir / self.service.name / f"{self.deployment.id}{suffix}"

    def built_workdir(self, release: ReleaseRecord, run_name: str) -> tuple[Path, StepOutcome]:
        """A built worktree of ``release`` (engine/worktrees.py ``ensure_built``)."""
        from conveyor.engine.worktrees import ensure_built  # worktrees builds on this module

        return ensure_built(self, release, run_name)

    def environment_url(self) -> str:
        target = self.env_spec.target
        if target.kind == "local":
            return f"http://{target.host}:{target.port}"
        return self.env_spec.url or ""

    def command_env(self, release: ReleaseRecord | None = None, workdir: Path | None = None) -> dict[str, str]:
        release = release or self.release
        state_dir = self.runtime.settings.state_dir / self.service.name / self.deployment.environment
        state_dir.mkdir(parents=True, exist_ok=True)
        # an allow-list of the server's variables, never its own secrets (domain/process_env.py)
        env = allowed(os.environ, (*STEP_BASICS, *parse_names(self.runtime.settings.step_pass_env)))
        env.update(self.spec.env)
        env.update(self.env_spec.env)
        env.update(
            {
                "CONVEYOR_SERVICE": self.service.name,
                "CONVEYOR_ENV": self.deployment.environment,
                "CONVEYOR_DEPLOYMENT_ID": self.deployment.id,
                "CONVEYOR_VERSION": release.version if release else "",
                "CONVEYOR_SHA": release.sha if release else self.deployment.sha,
                "CONVEYOR_WORKDIR": str(workdir or self.workdir()),
                "CONVEYOR_PREVIOUS_VERSION": self.previous.version if self.previous else "",
                "CONVEYOR_PREVIOUS_SHA": self.previous.sha if self.previous else "",
                "CONVEYOR_STATE_DIR": str(state_dir),
                "CONVEYOR_URL": self.environment_url(),
                "CONVEYOR_SERVER_URL": self.runtime.settings.own_url,
            }
        )
        return env

    def run(
        self,
        name: str,
        command: CommandSpec,
        *,
        default_timeout: float,
        rerun_interrupted: bool = False,
        release: ReleaseRecord | None = None,
        workdir: Path | None = None,
        cancellable: bool = True,
    ) -> StepOutcome:
        workdir = workdir or self.workdir()
        result = run_durable(
            self.runtime.settings.runs_dir / self.deployment.id / name,
            command.run,
            cwd=workdir,
            env=self.command_env(release, workdir),
            timeout=command.timeout or default_timeout,
            should_cancel=self.cancel_requested if cancellable else lambda: False,
            tail_bytes=self.runtime.settings.output_tail_bytes,
            rerun_interrupted=rerun_interrupted,
        )
        return outcome_of(result, f"`{command.run}`", f"its output: conveyor logs {self.deployment.id[:8]}")

    def write(self, change: Callable[[Connection], None]) -> None:
        """A write of the step (e.g. rollout's new current release). In the engine it is made in
        the transaction that records the step's end, so a step's writes are one transaction;
        elsewhere (a step called directly), at once in a transaction of its own."""
        if self.deferred is not None:
            self.deferred.append(change)
            return
        with self.runtime.db.begin() as conn:
            change(conn)

    def cancel_requested(self) -> bool:
        with self.runtime.db.read() as conn:
            return store.get_deployment(conn, self.deployment.id).cancel_requested


def load_context(rt: Runtime, deployment_id: str) -> StepContext:
    """The deployment as a step sees it now, read afresh from the database."""
    with rt.db.read() as conn:
        return context_in(conn, rt, deployment_id)


def context_in(conn: Connection, rt: Runtime, deployment_id: str, *, defer_writes: bool = False) -> StepContext:
    """``load_context`` in the caller's transaction (e.g. the one that records the step's start);
    ``defer_writes``: the step's ``write``s wait for the caller to make them (``deferred``)."""
    deployment = store.get_deployment(conn, deployment_id)
    service = service_store.get_service_by_id(conn, deployment.service_id)
    release = store.get_release(conn, deployment.release_id) if deployment.release_id else None
    previous = store.get_release(conn, deployment.previous_release_id) if deployment.previous_release_id else None
    spec = rt.spec_of(service.config_text)
    env = spec.environment(deployment.environment)
    return StepContext(rt, deployment, service, spec, env, release, previous, [] if defer_writes else None)
