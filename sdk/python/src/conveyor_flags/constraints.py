"""Constraint operators of the ruleset, compiled once into predicates over a context mapping.

Pure: standard library and ``google-re2``. A predicate takes the evaluation context (a mapping of
attribute name to value) and returns whether the constraint holds. Semantics are Unleash's
(docs/flags-ruleset.md):

- a missing attribute (absent, ``None`` or ``""``) makes ``NOT_IN`` true and every other operator
  false, and then ``inverted`` applies (so an inverted ``IN`` holds for a missing attribute);
- ``inverted`` negates the operator's answer;
- ``case_insensitive`` applies to the string operators (``IN``, ``NOT_IN``, ``STR_*``, ``REGEX``);
- numeric, semver and date operators compare against the first value; a context value that is not
  a number (a semantic version, a date) fails the operator;
- ``REGEX`` is RE2 (Unleash's dialect: no look-around, no backreferences), searched anywhere in the
  value; a pattern RE2 refuses is a ConstraintError;
- ``DATE_AFTER`` / ``DATE_BEFORE`` read ``current_time`` (an ISO 8601 string or a datetime) and use
  the wall clock when the context has none, as Unleash does;
- ``IN_CIDR`` holds when the value is an IP address inside one of the networks (an address alone is
  a /32 or /128).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import re2

Context = Mapping[str, Any]
Predicate = Callable[[Context], bool]

OPERATORS = frozenset(
    {
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
    }
)


class ConstraintError(ValueError):
    """A constraint that cannot be compiled (the message names the bad value)."""


def as_text(value: Any) -> str:
    """The string form of a context or ruleset value: JSON spelling for booleans."""
    if type(value) is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def as_number(value: Any) -> float | None:
    """A finite float from an int, float or numeric string; ``None`` otherwise (booleans too)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# Semantic versions (semver.org 2.0.0), comparable as tuples: (major, minor, patch, pre) where a
# release sorts after its pre-releases and pre-release identifiers compare numerically or lexically.
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
SemverKey = tuple[int, int, int, tuple[tuple[int, int, str], ...]]
_RELEASE: tuple[tuple[int, int, str], ...] = ((2, 0, ""),)


def semver_key(text: Any) -> SemverKey | None:
    """The sort key of a semantic version string (build metadata ignored), or ``None``."""
    if not isinstance(text, str):
        return None
    match = _SEMVER.match(text)
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    if pre is None:
        pre_key = _RELEASE
    else:
        # numeric identifiers sort before alphanumeric ones; a longer list wins on a common prefix
        pre_key = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split("."))
        pre_key = ((1, 0, ""), *pre_key)
    return int(major), int(minor), int(patch), pre_key


def compile_constraint(raw: Any) -> Predicate:
    """Compile one constraint object into a predicate; raise ConstraintError if it is malformed."""
    if not isinstance(raw, Mapping):
        raise ConstraintError(f"a constraint must be an object, got {raw!r}")
    attribute = raw.get("attribute")
    if not isinstance(attribute, str) or not attribute:
        raise ConstraintError(f"constraint attribute must be a non-empty string, got {attribute!r}")
    operator = raw.get("operator")
    values = raw.get("values")
    if values is None and "value" in raw:
        values = [raw["value"]]
    if values is None:
        values = []
    if not isinstance(values, list):
        raise ConstraintError(f"constraint values must be a list, got {values!r}")
    inverted = bool(raw.get("inverted", False))
    folded = bool(raw.get("case_insensitive", False))
    if operator not in OPERATORS:
        raise ConstraintError(f"unknown constraint operator {operator!r}; known: {', '.join(sorted(OPERATORS))}")
    if operator in ("IN", "NOT_IN", "STR_EQUALS") and not folded:
        # the common case, inlined: one dict lookup and one set lookup
        members = frozenset(as_text(v) for v in values)
        wanted = (operator != "NOT_IN") is not inverted

        missing = (operator == "NOT_IN") is not inverted

        def member(context: Context) -> bool:
            value = context.get(attribute)
            if value is None or value == "":
                return missing
            return ((value if type(value) is str else as_text(value)) in members) is wanted

        return member
    test = _operator_test(str(operator), values, folded)
    missing = (operator == "NOT_IN") is not inverted
    if operator in ("DATE_AFTER", "DATE_BEFORE"):

        def dated(context: Context) -> bool:
            value = context.get(attribute)
            if value is None or value == "":
                if attribute != "current_time":
                    return missing
                value = datetime.now(UTC)
            return test(value) is not inverted

        return dated

    def predicate(context: Context) -> bool:
        value = context.get(attribute)
        if value is None or value == "":
            return missing
        return test(value) is not inverted

    return predicate


def _operator_test(operator: str, values: list[Any], folded: bool) -> Callable[[Any], bool]:
    if operator.startswith("NUM_"):
        return _numeric_test(operator, values)
    if operator.startswith("SEMVER_"):
        return _semver_test(operator, values)
    if operator == "REGEX":
        try:
            patterns = [compile_regex(as_text(v), folded) for v in values]
        except ConstraintError:  # Unleash: a pattern its engine refuses fails this constraint only
            return lambda value: False
        return lambda value: any(p.search(as_text(value)) for p in patterns)
    if operator == "IN_CIDR":
        return _cidr_test(values)
    if operator.startswith("DATE_"):
        return _date_test(operator, values)
    texts = [as_text(v) for v in values]
    if folded:
        texts = [t.casefold() for t in texts]

        def norm(value: Any) -> str:
            return as_text(value).casefold()
    else:
        norm = as_text
    if operator in ("IN", "STR_EQUALS"):
        members = frozenset(texts)
        return lambda value: norm(value) in members
    if operator == "NOT_IN":
        members = frozenset(texts)
        return lambda value: norm(value) not in members
    if operator == "STR_STARTS_WITH":
        prefixes = tuple(texts)
        return lambda value: norm(value).startswith(prefixes)
    if operator == "STR_ENDS_WITH":
        suffixes = tuple(texts)
        return lambda value: norm(value).endswith(suffixes)
    parts = tuple(texts)  # STR_CONTAINS
    return lambda value: any(p in norm(value) for p in parts)


def _first(operator: str, values: list[Any]) -> Any:
    if not values:
        raise ConstraintError(f"{operator} needs one value to compare with, got none")
    return values[0]


def _numeric_test(operator: str, values: list[Any]) -> Callable[[Any], bool]:
    target = as_number(_first(operator, values))
    if target is None:
        raise ConstraintError(f"{operator} needs a number to compare with, got {values[0]!r}")
    compare: Callable[[float, float], bool] = {
        "NUM_EQ": float.__eq__,
        "NUM_GT": float.__gt__,
        "NUM_GTE": float.__ge__,
        "NUM_LT": float.__lt__,
        "NUM_LTE": float.__le__,
    }[operator]

    def test(value: Any) -> bool:
        number = as_number(value)
        return number is not None and compare(number, target)

    return test


def _semver_test(operator: str, values: list[Any]) -> Callable[[Any], bool]:
    target = semver_key(as_text(_first(operator, values)))
    if target is None:
        raise ConstraintError(f"{operator} needs a semantic version such as 1.4.0, got {values[0]!r}")
    if operator == "SEMVER_EQ":
        return lambda value: semver_key(value) == target
    compare: Callable[[SemverKey, SemverKey], bool] = {
        "SEMVER_GT": tuple.__gt__,
        "SEMVER_GTE": tuple.__ge__,
        "SEMVER_LT": tuple.__lt__,
        "SEMVER_LTE": tuple.__le__,
    }[operator]

    def test(value: Any) -> bool:
        key = semver_key(value)
        return key is not None and compare(key, target)

    return test


def compile_regex(pattern: str, case_insensitive: bool = False) -> Any:
    """An RE2 program for ``pattern``; ConstraintError (with RE2's reason) when RE2 refuses it."""
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = not case_insensitive
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ConstraintError(
            f"REGEX {pattern!r} does not compile in RE2: {reason} (Unleash's dialect: no look-around,"
            " no backreferences)"
        ) from None


def _cidr_test(values: list[Any]) -> Callable[[Any], bool]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(as_text(value).strip(), strict=False))
        except ValueError:
            continue  # Unleash skips a value that is not a network
    if not networks:
        return lambda value: False

    def test(value: Any) -> bool:
        try:
            address = ipaddress.ip_address(as_text(value).strip())
        except ValueError:
            return False
        return any(address in network for network in networks)

    return test


def as_datetime(value: Any) -> datetime | None:
    """An aware datetime from a datetime or an ISO 8601 string (naive ones are UTC), else None."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _date_test(operator: str, values: list[Any]) -> Callable[[Any], bool]:
    target = as_datetime(_first(operator, values))
    if target is None:
        raise ConstraintError(f"{operator} needs an ISO 8601 date such as 2024-01-01T00:00:00Z, got {values[0]!r}")
    after = operator == "DATE_AFTER"

    def test(value: Any) -> bool:
        moment = as_datetime(value)
        if moment is None:
            return False
        return moment > target if after else moment < target

    return test
