"""docs/conveyor-yml.md against the spec models (src/conveyor/spec/models.py), both ways.

The reference documents each section of conveyor.yml as a table (key | type | default | meaning)
marked with the model it describes, ``<!-- keys: HealthSpec -->``. For every model reachable from
``ServiceSpec``:
- every field is a row of its table, with the type and default the model has, and every row is a
  field;
- a key that is refused until it acts (``NOT_YET`` in an ``_only_keys_that_act`` validator) is
  documented only in the "Keys refused until they act" table, with a value that is refused;
- every other documented key is read somewhere outside the spec package (a documented key that
  nothing reads does nothing), and its meaning does not say it is not acted on.
The examples in the document are checked too: the full example is valid, and the report shown for
the broken one is what `conveyor validate` prints.
"""

from __future__ import annotations

import ast
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
import pytest
import yaml
from pydantic import BaseModel, BeforeValidator, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from conveyor.auth.policy import deployers
from conveyor.spec import SpecError, parse_spec
from conveyor.spec import models as spec_models
from conveyor.spec.durations import parse_duration
from conveyor.spec.models import CommandSpec, EnvironmentSpec, ServiceSpec

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "conveyor-yml.md"
SRC = ROOT / "src" / "conveyor"
MARKER = re.compile(r"<!-- keys: (\w+) -->")
REFUSED_MARKER = "<!-- refused until they act -->"
# fields whose YAML also takes a shorthand (a ``mode="before"`` validator), and the type the doc gives
SHORTHANDS = {
    ("GatesSpec", "checklist"): "list of names, or true/false",
    ("GatesSpec", "staging_verified"): "true/false, environment name or mapping",
}
WORDS_OF_A_KEY_THAT_DOES_NOTHING = ("not acted on", "reserved", "not yet", "does nothing", "ignored")


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    meaning: str


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table_after(lines: list[str], start: int) -> list[list[str]]:
    """The body rows of the markdown table that begins after line ``start`` (blank lines skipped)."""
    i = start + 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    rows = []
    for line in lines[i + 2 :]:  # skip the header and the |---| line
        if not line.startswith("|"):
            break
        rows.append(_cells(line))
    return rows


def _unquote(cell: str) -> str:
    return cell[1:-1] if cell.startswith("`") and cell.endswith("`") and cell.count("`") == 2 else cell


def documented() -> dict[str, list[Row]]:
    lines = DOC.read_text().splitlines()
    tables: dict[str, list[Row]] = {}
    for number, line in enumerate(lines):
        if match := MARKER.fullmatch(line.strip()):
            assert match.group(1) not in tables, f"two tables for {match.group(1)}"
            rows = _table_after(lines, number)
            assert all(len(r) == 4 for r in rows), f"{match.group(1)}: a row without key | type | default | meaning"
            tables[match.group(1)] = [Row(_unquote(r[0]), r[1], r[2], r[3]) for r in rows]
    return tables


def documented_refused() -> dict[str, str]:
    """Path (``environments.*.monitor``) -> a value the doc says is refused."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == REFUSED_MARKER)
    return {_unquote(row[0]): _unquote(row[1]) for row in _table_after(lines, start)}


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _models_in(arg)


def _yaml_key(name: str, field: FieldInfo) -> str:
    return field.validation_alias if isinstance(field.validation_alias, str) else name


def refused_in_code() -> set[tuple[str, str]]:
    """(model, key) pairs that ``_only_keys_that_act`` validators refuse with NOT_YET."""
    tree = ast.parse(Path(spec_models.__file__).read_text())
    refused = set()
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for node in ast.walk(cls):
            is_format = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            if is_format and isinstance(node.func.value, ast.Name) and node.func.value.id == "NOT_YET":  # type: ignore[attr-defined]
                key = next(k.value for k in node.keywords if k.arg == "key")  # type: ignore[attr-defined]
                assert isinstance(key, ast.Constant)
                refused.add((cls.name, key.value))
    return refused


def reachable() -> dict[str, tuple[type[BaseModel], str]]:
    """Every model that can appear in a conveyor.yml, with one path to it (refused keys not followed)."""
    refused = refused_in_code()
    found: dict[str, tuple[type[BaseModel], str]] = {"ServiceSpec": (ServiceSpec, "")}
    queue: list[tuple[type[BaseModel], str]] = [(ServiceSpec, "")]
    while queue:
        model, path = queue.pop(0)
        for name, field in model.model_fields.items():
            key = _yaml_key(name, field)
            if (model.__name__, key) in refused:
                continue
            below = f"{path}.{key}" if path else key
            if get_origin(field.annotation) is dict and key == "environments":
                below += ".*"
            for inner in _models_in(field.annotation):
                if inner.__name__ not in found:
                    found[inner.__name__] = (inner, below)
                    queue.append((inner, below))
    return found


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def described(annotation: Any, metadata: list[Any]) -> str:
    """The type of a field as the reference writes it (a regular expression for lists of text)."""
    if get_origin(annotation) is Annotated:
        inner, *more = get_args(annotation)
        return described(inner, [*more, *metadata])
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return described(args[0], metadata)
        assert all(isinstance(a, type) and issubclass(a, BaseModel) for a in args), annotation
        return "mapping"
    for item in metadata:
        if isinstance(item, BeforeValidator) and item.func is parse_duration:
            return "duration"
        if isinstance(item, FieldInfo):
            return described(annotation, list(item.metadata))
    names = [m for m in metadata if m in spec_models.ServiceName.__metadata__]
    if names:
        return "name"
    if annotation is bool:
        return "true/false"
    if annotation is int:
        ge = next((m.ge for m in metadata if isinstance(m, annotated_types.Ge)), None)
        le = next((m.le for m in metadata if isinstance(m, annotated_types.Le)), None)
        if ge is not None and le is not None:
            return f"whole number {ge}-{le}"
        return f"whole number >= {ge}" if ge is not None else "whole number"
    if annotation is str:
        return "text"
    if get_origin(annotation) is Literal:
        return _join([f"`{value}`" for value in get_args(annotation)])
    if annotation is CommandSpec:
        return "command"
    if annotation is spec_models.MigrateSpec:
        return "command or mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        if get_origin(item) is Literal:
            return "list of steps" if item == spec_models.Step else "list of values"
        if get_origin(item) is dict:
            return "list of mappings"
        return r"re:list of [a-z]+"  # list of roles / names / branches: what the text names
    if get_origin(annotation) is dict:
        key, value = get_args(annotation)
        if value is EnvironmentSpec:
            return "mapping of name to environment"
        if (key, value) == (str, str):
            return "mapping of text to text"
        return "mapping"
    raise AssertionError(f"no documented form for the type {annotation!r}")


def check_default(model: type[BaseModel], name: str, field: FieldInfo, row: Row) -> str | None:
    where = f"{model.__name__}.{row.key}"
    if field.is_required():
        return None if row.default.startswith("required") else f"{where}: is required, documented {row.default!r}"
    default = field.get_default(call_default_factory=True)
    if default is None:
        if re.match(r"(none|off|no )", row.default):
            return None
        return f"{where}: default is unset, documented {row.default!r} (write none or off)"
    if isinstance(default, BaseModel):
        if row.default.startswith("`") or row.default.startswith("required"):
            return f"{where}: default is each key's own default, documented {row.default!r}"
        return None
    match = re.match(r"`([^`]*)`", row.default)
    if not match:
        return f"{where}: default {default!r} must be written as a value in backticks, got {row.default!r}"
    annotation = Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation  # type: ignore[name-defined]
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    try:
        value = adapter.validate_python(yaml.safe_load(match.group(1)))
    except ValidationError as exc:
        return f"{where}: documented default {match.group(1)!r} is not valid: {exc}"
    return None if value == default else f"{where}: default is {default!r}, documented {match.group(1)!r}"


def attributes_read_outside_spec() -> set[str]:
    """Attribute names read anywhere in Conveyor but the spec package. A coarse test: a name read
    somewhere may be another object's attribute; a name read nowhere is certainly a key that idles."""
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        if path.parent.name != "spec":
            tree = ast.parse(path.read_text())
            names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    # and what the models' own methods read (e.g. ``step_plan`` reads ``steps``) when those are called
    for cls in (n for n in ast.parse(Path(spec_models.__file__).read_text()).body if isinstance(n, ast.ClassDef)):
        for method in (n for n in cls.body if isinstance(n, ast.FunctionDef) and not n.decorator_list):
            if method.name in names:
                names |= {node.attr for node in ast.walk(method) if isinstance(node, ast.Attribute)}
    return names


def test_every_section_has_one_table_and_every_table_a_model() -> None:
    tables, models = documented(), reachable()
    assert sorted(set(models) - set(tables)) == [], "sections of conveyor.yml without a table"
    assert sorted(set(tables) - set(models)) == [], "tables for models that conveyor.yml does not have"


@pytest.mark.parametrize("model_name", sorted(reachable()))
def test_keys_types_and_defaults_match_the_model(model_name: str) -> None:
    model, _path = reachable()[model_name]
    rows = {row.key: row for row in documented()[model_name]}
    refused = refused_in_code()
    shorthands = {(m, f) for m, f in SHORTHANDS}
    problems: list[str] = []
    fields = {_yaml_key(name, field): (name, field) for name, field in model.model_fields.items()}
    for key, (name, field) in fields.items():
        if (model_name, key) in refused:
            if key in rows:
                problems.append(f"{key}: refused until it acts, so documented only under 'Keys refused until they act'")
            continue
        if key == "kind" and get_origin(field.annotation) is Literal:
            continue  # the target's discriminator: `target.kind` picks the table
        if key not in rows:
            problems.append(f"{key}: a key of {model_name} that the reference does not document")
            continue
        row = rows[key]
        expected = SHORTHANDS.get((model_name, key)) or described(field.annotation, list(field.metadata))
        if expected.startswith("re:"):
            if not re.fullmatch(expected[3:], row.type):
                problems.append(f"{key}: type documented {row.type!r}, expected the form {expected[3:]!r}")
        elif row.type != expected:
            problems.append(f"{key}: type documented {row.type!r}, the model's is {expected!r}")
        if (problem := check_default(model, name, field, row)) is not None:
            problems.append(problem)
    for key in rows:
        if key not in fields:
            problems.append(f"{key}: documented, but {model_name} has no such key")
    before = {
        field
        for decorator in model.__pydantic_decorators__.field_validators.values()
        if decorator.info.mode == "before"
        for field in decorator.info.fields
    }
    assert {(model_name, f) for f in before} == {s for s in shorthands if s[0] == model_name}, (
        "a field takes a shorthand: add its documented type to SHORTHANDS"
    )
    assert problems == []


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.replace("*", "production").split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


def test_refused_keys_are_the_ones_the_models_refuse_and_each_is_refused() -> None:
    refused_doc = documented_refused()
    models = reachable()
    in_doc: set[tuple[str, str]] = set()
    for path, example in refused_doc.items():
        *parent, key = path.split(".")
        owner = next(
            (name for name, (_, at) in models.items() if at == ".".join(parent) and key in _yaml_keys(name)), None
        )
        assert owner is not None, f"{path}: no such key in conveyor.yml"
        in_doc.add((owner, key))
        data: dict[str, Any] = {
            "service": "shop",
            "environments": {"production": {"target": {"kind": "command", "deploy": "./deploy.sh"}}},
            "hotfix": {},
        }
        _set(data, path, yaml.safe_load(example))
        with pytest.raises(SpecError) as refused:
            parse_spec(yaml.safe_dump(data), "conveyor.yml")
        assert [p.message for p in refused.value.problems if "does not carry out" in p.message], (
            f"{path}: {example} is not refused: {refused.value}"
        )
    assert in_doc == refused_in_code()


def _yaml_keys(model_name: str) -> set[str]:
    model = reachable()[model_name][0]
    return {_yaml_key(name, field) for name, field in model.model_fields.items()}


def test_every_documented_key_acts() -> None:
    read = attributes_read_outside_spec()
    models = reachable()
    idle, admits = [], []
    for model_name, rows in documented().items():
        model = models[model_name][0]
        by_key = {_yaml_key(name, field): name for name, field in model.model_fields.items()}
        for row in rows:
            if row.key in by_key and by_key[row.key] not in read:
                idle.append(f"{model_name}.{row.key}")
            if any(words in row.meaning.lower() for words in WORDS_OF_A_KEY_THAT_DOES_NOTHING):
                admits.append(f"{model_name}.{row.key}: {row.meaning}")
    assert idle == [], "documented keys that no code outside conveyor.spec reads"
    assert admits == [], "a key that does nothing is refused until it acts, not documented as idle"


def test_deployers_default_names_the_roles_it_means() -> None:
    row = next(r for r in documented()["EnvironmentSpec"] if r.key == "deployers")
    env = EnvironmentSpec.model_validate({"target": {"kind": "command", "deploy": "x"}})
    for role in deployers(env):
        assert f"`{role}`" in row.meaning
    for role in {"admin", "reporter"} - set(deployers(env)):
        assert f"not `{role}`" in row.meaning or f"`{role}`" not in row.meaning.split("but")[0]


def _code_blocks() -> list[tuple[str, str]]:
    return re.findall(r"```(\w*)\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_full_example_is_valid() -> None:
    examples = [text for lang, text in _code_blocks() if lang == "yaml" and text.startswith("service:")]
    assert len(examples) == 2
    spec = parse_spec(examples[1], "conveyor.yml")
    assert set(spec.environments) == {"development", "staging", "production"}


def test_the_report_shown_is_what_validate_prints() -> None:
    blocks = _code_blocks()
    broken = next(i for i, (lang, text) in enumerate(blocks) if lang == "yaml" and text.startswith("service:"))
    with pytest.raises(SpecError) as report:
        parse_spec(blocks[broken][1], "conveyor.yml")
    assert [str(p) for p in report.value.problems] == blocks[broken + 1][1].strip().splitlines()
