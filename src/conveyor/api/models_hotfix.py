"""What the hotfix routes answer (api/hotfix.py, docs/hotfix.md)."""

from __future__ import annotations

from pydantic import Field

from conveyor.api.models import Timestamp, Wire


class HotfixStarted(Wire):
    service: str
    environment: str
    branch: str
    base_sha: str
    base_version: str
    created: bool
    pushed: bool
    next_steps: list[str]


class MergeBackItem(Wire):
    service: str
    branch: str
    sha: str
    version: str | None
    state: str = Field(description="due (pending), merged or cleared")
    reason: str
    files: list[str]
    at: Timestamp


class MissingOverride(Wire):
    service: str
    environment: str
    sha: str
    missing: list[str]
    reason: str


class RevertCreated(Wire):
    service: str
    environment: str
    branch: str
    sha: str
    reverted: list[str]
    from_: str = Field(alias="from")
    to: str
    pushed: bool
    plan: list[str]
