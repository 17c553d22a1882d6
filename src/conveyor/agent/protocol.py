"""The agent's wire format: what the server sends to the agent's loopback API and what it answers.

The agent (agent/api.py) declares these as its request bodies and response models; the server's
client (agent/client.py) builds requests from them and parses answers into them. Response models
allow fields they do not declare, so an agent newer than its server still parses.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from conveyor.domain.monitoring import LATENCY_BUCKETS, Window

# --- requests --------------------------------------------------------------------------------


class EnvironmentConfig(BaseModel):
    """PUT /v1/environments/{key}: the environment's router (idempotent)."""

    port: int = Field(ge=1, le=65535)
    host: str = "127.0.0.1"
    router: str = "builtin"
    max_body: int = Field(10 * 1024 * 1024, ge=1)


class ReleaseBody(BaseModel):
    version: str
    sha: str
    workdir: str
    command: str
    env: dict[str, str] = {}


class HealthBody(BaseModel):
    path: str = "/healthz"
    interval: float = Field(1.0, gt=0)
    successes: int = Field(2, ge=1)
    failures: int = Field(3, ge=1)
    timeout: float = Field(60.0, gt=0)


class OperationBody(BaseModel):
    """POST /v1/environments/{key}/operations: start ``release`` (idempotent by ``id``)."""

    id: str = Field(min_length=1, max_length=200)
    release: ReleaseBody
    replicas: int = Field(1, ge=1, le=100)
    strategy: str = Field("rolling", pattern="^(rolling|blue_green|recreate)$")
    max_surge: int = Field(1, ge=1)
    quick_rollback: float = Field(900.0, ge=0)
    health: HealthBody = HealthBody()


class SwitchBody(BaseModel):
    """POST /v1/environments/{key}/switch: a quick rollback to a warm release (409 when not warm)."""

    id: str = Field(min_length=1, max_length=200)
    version: str
    sha: str
    quick_rollback: float = Field(default=900.0, ge=0)  # how long the release switched away from stays warm


class MaintenanceBody(BaseModel):
    on: bool
    retry_after: int = Field(120, ge=1)


# --- answers ---------------------------------------------------------------------------------


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)


class AgentHealth(Answer):
    status: str
    pid: int
    environments: list[str]


class Instance(Answer):
    """One app instance: its state as the agent's health checks see it."""

    id: str
    version: str
    port: int
    pid: int | None
    state: str  # starting | ready | unhealthy | crashed | stopping | stopped
    restarts: int
    last_health: str


class InstanceOutput(Instance):
    """An instance with its last lines of output; ``lines_seen`` counts every line it printed."""

    lines_seen: int
    lines: list[str]
    role: Literal["active", "warm"]


class ReleaseSet(Answer):
    """The instances of one release: the serving one (``active``) or the warm one."""

    version: str
    sha: str
    workdir: str
    instances: list[Instance]
    warm_for_seconds: float | None

    def serving(self, version: str, sha: str) -> bool:
        """True when this is ``version`` at ``sha`` and all of its instances are ready."""
        ready = bool(self.instances) and all(i.state == "ready" for i in self.instances)
        return self.version == version and self.sha == sha and ready


class EnvironmentState(Answer):
    key: str
    port: int
    maintenance: bool
    active: ReleaseSet | None
    warm: ReleaseSet | None
    rotation: list[str]  # ids of the ready instances traffic goes to
    counters: dict[str, dict[str, Any]]  # per release: requests, errors, latency quantiles


class Operation(Answer):
    """A deploy or switch operation on the agent; ``state`` is running until it ends."""

    id: str
    state: Literal["running", "succeeded", "failed", "cancelled"]
    message: str
    log: list[str]
    version: str
    started: float
    finished: float | None


class ReleaseWindow(Answer):
    """GET /v1/environments/{key}/windows?release=V&since=T&until=T: one release's traffic over
    the seconds (epoch) that start in [since, until). ``errors`` counts 5xx answers and ``failed``
    requests (no answer at all); ``latency_buckets`` counts the answered requests per bucket of
    ``bucket_bounds`` (seconds, +Inf last). ``recorded_from``: the agent knows nothing earlier
    (it started then, or the history reaches no further), ``seconds`` counts the known part.
    ``complete``: the interval is past, so reading it again gives the same numbers."""

    release: str
    since: float
    until: float
    recorded_from: float
    complete: bool
    requests: int
    errors: int
    failed: int
    latency_buckets: list[int]
    bucket_bounds: list[float]
    seconds: float

    def window(self) -> Window:
        """The domain's Window (domain/monitoring.py) of these counts."""
        if tuple(self.bucket_bounds) != LATENCY_BUCKETS:
            raise ValueError(
                f"the agent's latency buckets {self.bucket_bounds} are not this server's {LATENCY_BUCKETS}"
            )
        return Window(self.requests, self.errors, self.failed, tuple(self.latency_buckets), self.seconds)


class Removed(Answer):
    removed: str


# --- what the server makes of them -----------------------------------------------------------


class NumberedInstance(Answer):
    """An instance numbered from 1 in its environment (serving release first, then the warm one):
    the number ``conveyor logs --instance`` takes. The fields of ``InstanceOutput`` follow it."""

    index: int
    id: str
    version: str
    port: int
    pid: int | None
    state: str
    restarts: int
    last_health: str
    lines_seen: int
    lines: list[str]
    role: Literal["active", "warm"]


class EnvironmentInstances(BaseModel):
    agent: bool  # false when no agent runs on the server's host
    instances: list[NumberedInstance]
