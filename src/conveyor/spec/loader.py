"""Read a conveyor.yml into a ``ServiceSpec``; every error is ``FILE:LINE:COL: message``.

The YAML is composed into nodes first, so that each value keeps the line and column it came
from; pydantic then validates the plain values and its errors are mapped back to those places.
"""

from __future__ import annotations

import os
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.constructor import SafeConstructor
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from conveyor.errors import NotFound
from conveyor.spec.bounds import MAX_BYTES, check_bounds, check_size
from conveyor.spec.explain import explain
from conveyor.spec.models import Loc, ServiceSpec
from conveyor.spec.problems import Positions, Problem, SpecError, dotted, format_problems

__all__ = ["Problem", "SpecError", "format_problems", "load_spec", "parse_spec"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


def load_spec(path: str | os.PathLike[str]) -> ServiceSpec:
    """The spec in the file at ``path``; raises NotFound or SpecError."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_BYTES + 1)  # never more than the limit, whatever the file's size
    except FileNotFoundError:
        raise NotFound(f"no such file: {name}", "create a conveyor.yml or give its path") from None
    except OSError as error:
        raise SpecError([Problem(name, 1, 1, f"cannot read the file: {error.strerror}")]) from None
    if len(data) > MAX_BYTES:
        check_size(os.path.getsize(path), name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError([Problem(name, 1, 1, f"not UTF-8 text: {error}")]) from None
    return parse_spec(text, name)


def parse_spec(text: str, filename: str = "conveyor.yml") -> ServiceSpec:
    """The spec in ``text``; raises SpecError listing every problem, in file order."""
    reader = _Reader(filename)
    data = reader.read(text)
    problems = reader.problems
    try:
        spec = ServiceSpec.model_validate(data)
    except ValidationError as error:
        problems += explain(error, reader.positions)
    else:
        if not problems:
            return spec
    in_order = dict.fromkeys(sorted(problems, key=lambda problem: (problem.line, problem.col)))
    raise SpecError(list(in_order))


def _where(mark: Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


class _Reader:
    """Builds plain values from YAML nodes, noting where each starts and any duplicate keys."""

    def __init__(self, filename: str) -> None:
        self.positions = Positions(filename)
        self.problems: list[Problem] = []
        self._constructor = SafeConstructor()
        self._checked: set[int] = set()

    def read(self, text: str) -> object:
        try:
            check_bounds(text, self.positions.file)  # before composing, which recurses and expands aliases
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            if root is None:
                raise self._fail("the file is empty; it needs at least service and environments")
            if not isinstance(root, MappingNode):
                raise self._fail("the top level must be a mapping of keys such as service and environments")
            return self._value(root, ())
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            message = f"YAML syntax error: {error.problem or error.context}"
            if error.context and error.problem and error.context_mark:
                message += f" ({error.context} at line {error.context_mark.line + 1})"
            line, col = _where(mark) if mark else (1, 1)
            raise SpecError([Problem(self.positions.file, line, col, message)]) from None
        except ReaderError as error:  # a character YAML does not allow, such as a control character
            before = text[: error.position]
            line, col = before.count("\n") + 1, len(before) - before.rfind("\n")
            message = f"YAML syntax error: character #x{error.character:04x}: {error.reason}"
            raise SpecError([Problem(self.positions.file, line, col, message)]) from None

    def _fail(self, message: str) -> SpecError:
        return SpecError([Problem(self.positions.file, 1, 1, message)])

    def _value(self, node: Node, path: Loc) -> Any:
        self.positions.values[path] = _where(node.start_mark)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self._value(item, (*path, index)) for index, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: Node) -> Any:
        """The plain value of ``node``; a value YAML's types cannot hold (2026-02-30, an integer of
        5,000 digits) is a problem at that node rather than an exception."""
        try:
            return self._constructor.construct_object(node)
        except (ValueError, OverflowError) as error:
            raise SpecError([Problem(self.positions.file, *_where(node.start_mark), f"bad value: {error}")]) from None

    def _mapping(self, node: MappingNode, path: Loc) -> dict[Any, Any]:
        if id(node) not in self._checked:  # an alias visits the same node again
            self._checked.add(id(node))
            self._check_keys(node, path)
        self._constructor.flatten_mapping(node)  # resolves `<<: *anchor`; the mapping's own keys win
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode):
                key = self._scalar(key_node)
                self.positions.keys[(*path, key)] = _where(key_node.start_mark)
                result[key] = self._value(value_node, (*path, key))
        return result

    def _check_keys(self, node: MappingNode, path: Loc) -> None:
        """Report keys given twice and keys that are not plain values, before merges add keys."""
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            where = _where(key_node.start_mark)
            if not isinstance(key_node, ScalarNode):
                self.problems.append(Problem(self.positions.file, *where, "a key must be a plain value"))
                continue
            key = self._scalar(key_node)
            if key in first_lines:
                within = f"in {dotted(path)}" if path else "at top level"
                message = f"duplicate key {key!r} {within} (first given on line {first_lines[key]})"
                self.problems.append(Problem(self.positions.file, *where, message))
            first_lines.setdefault(key, where[0])
