"""What the flags API answers (/api/v1/flags): flags, their state per environment, SDK keys, and
the ruleset SDKs read (its format: docs/flags-ruleset.md)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from conveyor.api.models import Timestamp, Wire
from conveyor.flags.model import Constraint, Dependency, FlagType, Strategy, Variant


class Flag(Wire):
    key: str
    service: str
    type: FlagType
    default: Any
    on_value: Any
    variants: list[Variant]
    variant_stickiness: str
    dependencies: list[Dependency]
    description: str | None
    created_by: str
    created_at: Timestamp
    updated_by: str
    updated_at: Timestamp


class FlagSummary(Flag):
    enabled_in: list[str] = Field(description="the environments where the flag is on")


class FlagEnvironment(Wire):
    """The flag's state in one environment (an environment never touched: off, no strategies)."""

    environment: str
    enabled: bool
    strategies: list[Strategy]
    updated_by: str | None
    updated_at: Timestamp | None
    version: int = Field(description="the environment's ruleset version")


class FlagDetail(Flag):
    environments: list[FlagEnvironment]


class FlagState(Wire):
    """The flag's state in one environment after a change (``FlagEnvironment`` after its key and service)."""

    key: str
    service: str
    environment: str
    enabled: bool
    strategies: list[Strategy]
    updated_by: str | None
    updated_at: Timestamp | None
    version: int = Field(description="the environment's ruleset version")


class FlagDeleted(Wire):
    key: str
    service: str
    deleted: bool


class SdkKey(Wire):
    id: int
    service: str
    environment: str
    prefix: str
    name: str | None
    created_by: str
    created_at: Timestamp
    revoked: bool
    revoked_at: Timestamp | None


class NewSdkKey(SdkKey):
    key: str = Field(description="the key itself: in this answer only")


class Ruleset(Wire):
    """Every flag of the environment, for local evaluation (docs/flags-ruleset.md)."""

    environment: str
    version: int
    flags: dict[str, dict[str, Any]]
    segments: dict[str, dict[str, Any]] | None = Field(None, description="by id; only when the service has any")


class Segment(Wire):
    """A shared set of constraints (Unleash's segment); strategies name it by ``id``."""

    id: int
    service: str
    name: str
    description: str | None
    constraints: list[Constraint]
    created_by: str
    created_at: Timestamp
    updated_by: str
    updated_at: Timestamp
    used_by: list[str] = Field(description="FLAG@ENVIRONMENT of every strategy that names it")


class SegmentDeleted(Wire):
    id: int
    name: str
    service: str
    deleted: bool


class ImportChange(Wire):
    kind: str = Field(description="segment, flag (its definition) or state (its state in the environment)")
    name: str
    action: str = Field(description="create, update or unchanged")
    fields: list[str] = Field(description="what changes")
    notes: list[str] = Field(description="what had to be expressed differently, and how")


class ImportResult(Wire):
    service: str
    environment: str
    dry_run: bool
    changes: list[ImportChange]


class OfrepConfiguration(Wire):
    name: str
    capabilities: dict[str, Any]
