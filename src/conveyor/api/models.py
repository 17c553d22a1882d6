"""What the REST API answers (/api/v1), as Pydantic models: the routes declare them, so the
OpenAPI document describes real responses, and the CLI parses answers with them.

The JSON is the contract users' scripts read. Models mirror it exactly: timestamps stay the ISO
strings the server writes, and a key a model does not declare still goes out unchanged
(``extra="allow"``); tests/api/test_response_models.py fails on any such key, so each is declared.
Flags and admin answers are in api/models_flags.py and api/models_admin.py.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from conveyor.agent.protocol import NumberedInstance
from conveyor.domain.deployment import DeploymentKind, DeploymentState, StepState


class Wire(BaseModel):
    """Base of every response model: undeclared keys pass through (and fail the contract test)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


Timestamp = str  # ISO 8601 with offset, as the server wrote it


class Health(Wire):
    status: str
    version: str


# --- deployments -----------------------------------------------------------------------------


class Gate(Wire):
    """One gate's verdict: passed, or why not and how to get it to pass."""

    gate: str
    passed: bool
    reason: str
    details: dict[str, Any]


class Deployment(Wire):
    id: str
    seq: int
    service: str
    environment: str
    kind: DeploymentKind
    ref: str
    sha: str
    version: str | None
    previous_version: str | None
    state: DeploymentState
    actor: str
    trigger: str
    notes: str | None
    ticket: str | None
    reason: str | None
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    gates: list[Gate] = Field(description="the gates as last evaluated (empty before that)")
    emergency: bool
    when_open: bool
    maintenance: bool
    with_database: bool


class Step(Wire):
    name: str
    state: StepState
    message: str | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    duration_ms: int | None


class StepWithOutput(Step):
    output: str = Field(description="the step's output (its tail; a running step's output read live)")


class DeploymentDetail(Deployment):
    """A deployment with its step journal, as every deployment endpoint answers."""

    steps: list[Step]


class DeploymentLogs(Deployment):
    steps: list[StepWithOutput]
    notifications: list[Delivery] = Field(default_factory=list, description="its messages, oldest first")


# --- services --------------------------------------------------------------------------------


class Registration(Wire):
    """What adding (or re-registering) a service did, or would do on a dry run."""

    service: str
    created: bool
    dry_run: bool
    changes: list[str] = Field(description="what changes, e.g. environments.production.deployers; empty: nothing")
    diff: str
    confirm: str = Field(description="send it back as confirm_diff to apply the changes")
    github_repository: str | None
    environments: list[str]
    deployments: list[Deployment] = Field(description="deployments started for its followed branches")


class ServiceSummary(Wire):
    service: str
    source: str
    environments: list[str]


class MaintenanceState(Wire):
    service: str
    environment: str
    maintenance: bool


class ServingRelease(Wire):
    version: str
    sha: str
    tag: str | None


class EnvironmentStatus(Wire):
    service: str
    environment: str
    current: ServingRelease | None = Field(description="the release serving; null before the first deploy")
    latest: Deployment | None


# --- instances -------------------------------------------------------------------------------


class EnvironmentOutput(Wire):
    service: str
    environment: str
    agent: bool = Field(description="false when no agent runs on the server's host")
    instances: list[NumberedInstance]


# --- gates -----------------------------------------------------------------------------------


class Why(Wire):
    service: str
    environment: str
    ref: str
    sha: str
    as_: str = Field(alias="as", description="the user the gates were evaluated for")
    at: Timestamp
    deployable: bool
    gates: list[Gate]


class Verification(Wire):
    service: str
    environment: str
    sha: str
    verified_by: str


class CheckReported(Wire):
    sha: str
    name: str
    state: str


class ReviewReported(Wire):
    sha: str
    reviewer: str
    author: str
    state: str


# --- calendar --------------------------------------------------------------------------------


class Freeze(Wire):
    id: int
    environment: str
    from_: Timestamp = Field(alias="from")
    until: Timestamp | None = Field(description="null: until lifted")
    reason: str
    created_by: str
    lifted_at: Timestamp | None


class ServiceFreeze(Wire):
    """A new freeze, with its service first (the fields of ``Freeze`` after it, in that order)."""

    service: str
    id: int
    environment: str
    from_: Timestamp = Field(alias="from")
    until: Timestamp | None = Field(description="null: until lifted")
    reason: str
    created_by: str
    lifted_at: Timestamp | None


class Span(Wire):
    start: Timestamp
    end: Timestamp
    open: bool
    reason: str


class Calendar(Wire):
    """Open windows and closures; without a deploy schedule, ``schedule`` is null and there are
    no spans (and no ``timezone`` or ``until``)."""

    service: str
    environment: str
    timezone: str | None = None
    until: Timestamp | None = None
    schedule: None = None
    spans: list[Span]


# --- hooks -----------------------------------------------------------------------------------


class HookDelivery(Wire):
    """What a webhook delivery did. Keys beyond ``event`` and ``deployments`` appear only when
    they apply."""

    event: str
    deployments: list[Deployment]
    ignored: bool | None = None
    duplicate: bool | None = None
    reason: str | None = None
    services: list[str] | None = None


# --- notifications ---------------------------------------------------------------------------


class Delivery(Wire):
    """One message of a deployment to one notifier, and what became of it (``notify/``)."""

    id: int
    notifier: str
    destination: str
    event: str
    state: str = Field(description="pending (waiting or retrying), delivered or failed")
    attempts: int
    outcome: str | None = Field(description="the receiver's answer, or the last error")
    created_at: Timestamp
    delivered_at: Timestamp | None


class SampleResult(Wire):
    notifier: str
    destination: str
    ok: bool
    note: str


class SampleSent(Wire):
    """What `conveyor notify test ENV` did: a sample through each notifier of the environment."""

    service: str
    environment: str
    results: list[SampleResult]
