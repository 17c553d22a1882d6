"""Wire models of monitoring after a deploy, shared by the API and the CLI."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from conveyor.api.models import Timestamp, Wire


class FindingView(Wire):
    signal: str
    unit: str
    value: float | None
    threshold: str | None
    baseline: float | None = Field(description="the previous release's value, when compared")
    breached: bool
    note: str


class SampleView(Wire):
    seq: int = Field(description="the interval's number from the window's start")
    since: Timestamp
    until: Timestamp
    requests: int
    errors: int
    failed: int
    latency_buckets: list[int]
    verdict: str = Field(description="of the window so far: healthy, breach or not_enough_traffic")
    findings: list[FindingView]


class BreachView(Wire):
    seq: int
    at: Timestamp
    findings: list[FindingView]
    flags: list[dict[str, Any]] = Field(description="flag changes in the environment since the deployment started")
    killed_flags: list[str] | None = None


class MonitoringWindow(Wire):
    started_at: Timestamp
    ends_at: Timestamp
    switched_at: Timestamp
    for_seconds: float
    interval_seconds: float
    on_breach: str
    verdict: str | None
    outcome: str | None = Field(
        description="passed, not_enough_traffic, alerted, breach, accepted, rolled_back; null while watching"
    )
    decision: str | None
    decided_by: str | None
    decision_reason: str | None
    breach: BreachView | None
    alerted: list[BreachView]
    flags: list[dict[str, Any]]
    killed_flags: list[str]
    ended_at: Timestamp | None


class MonitoringView(Wire):
    deployment_id: str
    state: str
    monitoring: MonitoringWindow | None = Field(description="null: the deployment was not monitored")
    samples: list[SampleView]
