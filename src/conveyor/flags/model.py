"""Flags as the admin API accepts them: a definition (type, default, on value, variants) and a
per-environment state (enabled, strategies). Pure: validation only, no store or web code.
The shapes are those of the ruleset (docs/flags-ruleset.md)."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Any, Literal, TypeVar, get_args

from conveyor_flags.constraints import ConstraintError, as_datetime, compile_regex
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from conveyor.errors import InvalidInput

FlagType = Literal["boolean", "string", "number", "json"]
FLAG_TYPES: tuple[FlagType, ...] = ("boolean", "string", "number", "json")
KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# path segments under /api/v1/flags that are not flag keys
RESERVED_KEYS = frozenset({"ruleset", "stream", "sdk-keys", "segments", "import"})
VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
Operator = Literal[
    "IN",
    "NOT_IN",
    "STR_EQUALS",
    "STR_STARTS_WITH",
    "STR_ENDS_WITH",
    "STR_CONTAINS",
    "NUM_EQ",
    "NUM_GT",
    "NUM_GTE",
    "NUM_LT",
    "NUM_LTE",
    "SEMVER_EQ",
    "SEMVER_GT",
    "SEMVER_LT",
    "SEMVER_GTE",
    "SEMVER_LTE",
    "REGEX",
    "IN_CIDR",
    "DATE_AFTER",
    "DATE_BEFORE",
]
OPERATORS: tuple[str, ...] = get_args(Operator)
SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
MAX_STRING = 10_000
DEFAULTS: dict[str, Any] = {"boolean": False, "string": "", "number": 0, "json": {}}


def check_key(key: str) -> str:
    if not KEY.match(key):
        raise InvalidInput(
            f"flag key {key!r} is not allowed",
            fix="use 1-128 characters of A-Z, a-z, 0-9, '_', '-', '.', starting with a letter or digit",
        )
    if key in RESERVED_KEYS:
        raise InvalidInput(f"flag key {key!r} is reserved", fix="pick another key")
    return key


def value_problem(flag_type: str, value: Any) -> str | None:
    """Why ``value`` cannot be a value of a flag of ``flag_type``, or None when it can."""
    if flag_type == "boolean" and not isinstance(value, bool):
        return f"{value!r} is not a boolean (true or false)"
    if flag_type == "string" and not isinstance(value, str):
        return f"{value!r} is not a string"
    if flag_type == "string" and len(value) > MAX_STRING:
        return f"a string of {len(value)} characters is longer than {MAX_STRING}"
    if flag_type == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"{value!r} is not a number"
    if flag_type == "number" and isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if flag_type == "json" and not isinstance(value, dict | list):
        return f"{value!r} is not a JSON object or array"
    return None


def check_value(flag_type: str, value: Any, where: str) -> Any:
    problem = value_problem(flag_type, value)
    if problem:
        raise InvalidInput(f"{where}: {problem}", fix=f"give a {flag_type} value, as the flag's type is {flag_type}")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Override(Strict):
    """Unleash variant override: a context whose ``attribute`` is one of ``values`` gets the variant."""

    attribute: str = Field(min_length=1, max_length=128)
    values: list[str] = Field(min_length=1, max_length=1000)


class Variant(Strict):
    name: str = Field(pattern=VARIANT_NAME.pattern)
    value: Any
    weight: int = Field(1, ge=0, le=100_000)
    overrides: list[Override] = Field(default_factory=list, max_length=100)

    @model_serializer(mode="wrap")
    def _without_empty_overrides(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not data.get("overrides"):
            data.pop("overrides", None)
        return data


class Dependency(Strict):
    """Unleash dependent flag: the parent ``flag`` (same service) must be on (``enabled``) or off,
    and on with one of ``variants`` when given."""

    flag: str = Field(min_length=1, max_length=128)
    enabled: bool = True
    variants: list[str] = Field(default_factory=list, max_length=100)


def _check_variants(variants: list[Variant] | None) -> list[Variant] | None:
    if not variants:
        return variants
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    if sum(v.weight for v in variants) <= 0:
        raise ValueError("variant weights add up to 0; give at least one a positive weight")
    return variants


class Constraint(Strict):
    attribute: str = Field(min_length=1, max_length=128)
    operator: Operator
    values: list[str] = Field(min_length=1, max_length=1000)
    inverted: bool = False
    case_insensitive: bool = False

    @field_validator("values", mode="before")
    @classmethod
    def _as_strings(cls, values: Any) -> Any:
        if isinstance(values, list):
            return [str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in values]
        return values

    @model_validator(mode="after")
    def _values_fit_operator(self) -> Constraint:
        if self.operator.startswith(("NUM_", "SEMVER_", "DATE_")) and len(self.values) != 1:
            raise ValueError(f"{self.operator} compares with one value, got {len(self.values)}")
        for value in self.values:
            if len(value) > 1024:
                raise ValueError("a constraint value is longer than 1024 characters")
            if self.operator.startswith("NUM_"):
                try:
                    if not math.isfinite(float(value)):
                        raise ValueError
                except ValueError:
                    raise ValueError(f"{self.operator} needs numbers, got {value!r}") from None
            if self.operator.startswith("SEMVER_") and not SEMVER.match(value):
                raise ValueError(f"{self.operator} needs versions like 1.4.0, got {value!r}")
            if self.operator.startswith("DATE_") and as_datetime(value) is None:
                raise ValueError(f"{self.operator} needs an ISO 8601 date like 2025-01-31T00:00:00Z, got {value!r}")
            if self.operator == "IN_CIDR":
                try:
                    ipaddress.ip_network(value.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"IN_CIDR needs networks like 10.0.0.0/8 or addresses, got {value!r}") from None
            if self.operator == "REGEX":
                try:
                    compile_regex(value, self.case_insensitive)
                except ConstraintError as exc:
                    raise ValueError(str(exc)) from None
        return self


class Strategy(Strict):
    segments: list[int] = Field(default_factory=list, max_length=100, description="segment ids: all must match")
    constraints: list[Constraint] = Field(default_factory=list, max_length=100)
    rollout: int = Field(100, ge=0, le=100)
    stickiness: str = Field("default", min_length=1, max_length=128)
    group_id: str | None = Field(None, max_length=256)
    value: Any = None
    variants: list[Variant] | None = Field(None, max_length=100)

    _variants = field_validator("variants")(_check_variants)

    @model_serializer(mode="wrap")
    def _without_empty_segments(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not data.get("segments"):
            data.pop("segments", None)
        return data


SEGMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:-]{0,127}$")


class Segment(Strict):
    """Unleash's segment: a named set of constraints of one service that strategies name by id."""

    name: str = Field(pattern=SEGMENT_NAME.pattern)
    description: str | None = Field(None, max_length=2000)
    constraints: list[Constraint] = Field(default_factory=list, max_length=100)


class Definition(Strict):
    """What a flag serves: its type, its default, its on value and its variants."""

    type: FlagType = "boolean"
    default: Any = None
    on_value: Any = None
    variants: list[Variant] = Field(default_factory=list, max_length=100)
    variant_stickiness: str = Field("default", min_length=1, max_length=128)
    dependencies: list[Dependency] = Field(default_factory=list, max_length=20)
    description: str | None = Field(None, max_length=2000)

    _variants = field_validator("variants")(_check_variants)

    @model_validator(mode="after")
    def _fill_and_check(self) -> Definition:
        if self.default is None:
            self.default = DEFAULTS[self.type]
        if self.on_value is None:
            # a boolean flag that is on serves true; other types serve their default until
            # variants, an on value or strategy values say otherwise
            self.on_value = True if self.type == "boolean" else self.default
        for where, value in (("default", self.default), ("on_value", self.on_value)):
            problem = value_problem(self.type, value)
            if problem:
                raise ValueError(f"{where}: {problem}")
        for v in self.variants:
            problem = value_problem(self.type, v.value)
            if problem:
                raise ValueError(f"variant {v.name!r}: {problem}")
        return self


class EnvState(Strict):
    """A flag's state in one environment."""

    enabled: bool = False
    strategies: list[Strategy] = Field(default_factory=list, max_length=100)


def check_strategies(flag_type: str, strategies: list[Strategy]) -> None:
    """Strategy values and variants must be of the flag's type."""
    for i, s in enumerate(strategies, 1):
        if s.value is not None:
            check_value(flag_type, s.value, f"strategy {i} value")
        for v in s.variants or []:
            check_value(flag_type, v.value, f"strategy {i} variant {v.name!r}")


def is_rollout(strategy: Strategy) -> bool:
    """The flag's rollout strategy is the first with neither constraints nor segments; the others
    are targeting rules."""
    return not strategy.constraints and not strategy.segments


def with_rollout(strategies: list[Strategy], percent: int) -> list[Strategy]:
    """Set the rollout: the first strategy without constraints or segments (the flag's rollout
    strategy) gets ``percent``; with none, one is added after the targeting rules, so they still win."""
    if not 0 <= percent <= 100:
        raise InvalidInput(f"rollout {percent} is not a percentage", fix="give a whole number from 0 to 100")
    out = list(strategies)
    for i, s in enumerate(out):
        if is_rollout(s):
            out[i] = s.model_copy(update={"rollout": percent})
            return out
    return [*out, Strategy(rollout=percent)]


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any, what: str) -> M:
    """Validate ``data`` as ``model``; a problem is an InvalidInput that names the bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            ": ".join(p for p in (".".join(str(x) for x in e["loc"]), e["msg"].removeprefix("Value error, ")) if p)
            for e in exc.errors()
        )
        raise InvalidInput(f"{what} is not valid: {problems}", fix="see docs/flags.md for the format") from None


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
