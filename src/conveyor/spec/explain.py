"""Turn pydantic's validation errors into located, human messages."""

from __future__ import annotations

from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from conveyor.spec.models import Loc, RuleError, ServiceSpec
from conveyor.spec.problems import Positions, Problem, dotted

_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_SHAPES = {
    "CommandSpec": "a command (text, or a mapping with run and timeout)",
    "MigrateSpec": "a command (text, or a mapping with run, sql, down and the other keys of migrate)",
}


def explain(error: ValidationError, positions: Positions) -> list[Problem]:
    """Every error in ``error``, at the YAML node it is about."""
    return [problem for detail in error.errors() for problem in _explain(detail, positions)]


def _explain(detail: ErrorDetails, positions: Positions) -> list[Problem]:
    path, owner, at_key = _follow(detail["loc"])
    kind = detail["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(_keys(owner)) if owner else ""
        message = f"unknown key {path[-1]!r} {_within(path[:-1])} (allowed: {allowed})"
        return [positions.problem(path, message, at_key=True)]
    ctx = detail.get("ctx", {})
    if kind == "union_tag_not_found":  # pydantic locates it at the mapping that lacks the key
        path, kind = (*path, ctx["discriminator"].strip("'")), "missing"
    if kind == "missing":
        return [positions.problem(path[:-1], f"missing required key {path[-1]!r} {_within(path[:-1])}")]
    cause = ctx.get("error")
    if isinstance(cause, RuleError):
        return [positions.problem(path + below, _at(path, message)) for below, message in cause.broken]
    if at_key or kind == "invalid_key":
        return [positions.problem(path, _at(path[:-1], _describe(detail)), at_key=True)]
    return [positions.problem(path, _at(path, _describe(detail)))]


def _follow(loc: Loc) -> tuple[Loc, type[BaseModel] | None, bool]:
    """Follow ``loc`` through the model types. Returns the path in the YAML data (pydantic adds
    the target's kind to its locations; YAML has no such level), the model whose field the last
    part names, and whether ``loc`` is about a mapping key rather than its value."""
    path: list[str | int] = []
    owner: type[BaseModel] | None = None
    shape: Any = ServiceSpec
    for part in loc:
        if part == "[key]":
            return tuple(path), owner, True
        shape = _unwrap(shape)
        if isinstance(shape, tuple):  # a union of models told apart by their `kind`
            shape = next((model for model in shape if model.model_fields["kind"].default == part), None)
            continue
        if isinstance(shape, type) and issubclass(shape, BaseModel):
            owner = shape
            shape = _field_type(shape, part)
        else:
            shape = get_args(shape)[-1] if get_origin(shape) in (dict, list) else None
        path.append(part)
    return tuple(path), owner, False


def _unwrap(shape: Any) -> Any:
    """``X | None`` -> X; ``Annotated[X, ...]`` -> X; a union of several models -> a tuple of them."""
    if get_origin(shape) is Annotated:
        shape = get_args(shape)[0]
    if get_origin(shape) in (Union, UnionType):
        members = tuple(member for member in get_args(shape) if member is not NoneType)
        return members[0] if len(members) == 1 else members
    return shape


def _field_type(model: type[BaseModel], key: str | int) -> Any:
    fields = model.model_fields.items()
    return next((f.annotation for name, f in fields if key in (name, f.validation_alias)), None)


def _keys(model: type[BaseModel]) -> list[str]:
    fields = model.model_fields.items()
    return sorted(f.validation_alias if isinstance(f.validation_alias, str) else name for name, f in fields)


def _within(path: Loc) -> str:
    return f"in {dotted(path)}" if path else "at top level"


def _at(path: Loc, message: str) -> str:
    return f"{dotted(path)}: {message}" if path else message


def _describe(detail: ErrorDetails) -> str:
    kind, value, ctx = detail["type"], detail["input"], detail.get("ctx", {})
    if kind in _EXPECTED:
        hint = f' (quote it: "{value}")' if kind == "string_type" and _is_number(value) else ""
        return f"expected {_EXPECTED[kind]}, got {_show(value)}{hint}"
    if kind == "invalid_key":
        return f"a key must be text, got {_show(value)}"
    if kind == "model_type":
        return f"expected {_SHAPES.get(ctx['class_name'], 'a mapping')}, got {_show(value)}"
    if kind == "literal_error":
        return f"expected {ctx['expected']}, got {_show(value)}"
    if kind == "union_tag_invalid":
        key = ctx["discriminator"].strip("'")
        return f"unknown {key} {ctx['tag']!r} (expected one of {ctx['expected_tags']})"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}, got {_show(value)}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}, got {_show(value)}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "value_error":
        return str(ctx["error"])
    return detail["msg"]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: object) -> str:
    """``value`` as YAML would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value) if isinstance(value, str) else str(value)
