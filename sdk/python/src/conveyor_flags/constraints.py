"""Constraint operators of the ruleset, compiled once into predicates over a context mapping.

Pure: standard library only. A predicate takes the evaluation context (a mapping of attribute
name to value) and returns whether the constraint holds. Semantics (docs/flags-ruleset.md):

- a missing attribute (absent, ``None`` or ``""``) fails the constraint, whatever ``inverted`` says;
- ``inverted`` negates the operator's answer;
- ``case_insensitive`` applies to the string operators (``IN``, ``NOT_IN``, ``STR_*``, ``REGEX``);
- numeric and semver operators compare against the first value; a context value that is not a
  number (or not a semantic version) fails the constraint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

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
        "REGEX",
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
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
SemverKey = tuple[int, int, int, tuple[tuple[int, int, str], ...]]
_RELEASE: tuple[tuple[int, int, str], ...] = ((2, 0, ""),)


def semver_key(text: Any) -> SemverKey | None:
    """The sort key of a semantic version string (build metadata ignored), or ``None``."""
    if not isinstance(text, str):
        return None
    match = _SEMVER.match(text.strip())
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

        def member(context: Context) -> bool:
            value = context.get(attribute)
            if value is None or value == "":
                return False
            return ((value if type(value) is str else as_text(value)) in members) is wanted

        return member
    test = _operator_test(str(operator), values, folded)

    def predicate(context: Context) -> bool:
        value = context.get(attribute)
        if value is None or value == "":
            return False
        return test(value) is not inverted

    return predicate


def _operator_test(operator: str, values: list[Any], folded: bool) -> Callable[[Any], bool]:
    if operator.startswith("NUM_"):
        return _numeric_test(operator, values)
    if operator.startswith("SEMVER_"):
        return _semver_test(operator, values)
    if operator == "REGEX":
        flags = re.IGNORECASE if folded else 0
        try:
            patterns = [re.compile(as_text(v), flags) for v in values]
        except re.error as exc:
            raise ConstraintError(f"invalid REGEX pattern in {values!r}: {exc}") from exc
        return lambda value: any(p.search(as_text(value)) for p in patterns)
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

    greater = operator == "SEMVER_GT"

    def test(value: Any) -> bool:
        key = semver_key(value)
        if key is None:
            return False
        return key > target if greater else key < target

    return test
