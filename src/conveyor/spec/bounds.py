"""Limits a conveyor.yml must keep before it is composed into nodes: its size, how deeply its
collections nest, and how many values it holds once every alias is expanded.

Composing and walking YAML are recursive and follow aliases, so a file of a few hundred bytes
can ask for billions of values (an alias bomb) and a few thousand brackets exhaust the stack.
The checks here read YAML events, which the parser produces with a loop and without expanding
aliases, so they cost time in proportion to the file's length and stop at the first excess.
"""

from __future__ import annotations

import yaml
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent, ScalarEvent

from conveyor.spec.problems import Problem, SpecError

MAX_BYTES = 256 * 1024
"""A conveyor.yml of a few hundred lines is a few kilobytes; this leaves a wide margin."""
MAX_DEPTH = 64
"""Collections nested inside each other; a real file nests fewer than ten."""
MAX_VALUES = 20_000
"""Values (scalars and collections) once aliases and merge keys are expanded."""
_DEPTH_FIX = "a conveyor.yml needs fewer than ten"
_ALIAS_FIX = "use fewer aliases"


def check_size(size: int, file: str) -> None:
    if size > MAX_BYTES:
        raise SpecError(
            [Problem(file, 1, 1, f"the file is {size} bytes; a conveyor.yml may have at most {MAX_BYTES} bytes")]
        )


def check_bounds(text: str, file: str) -> None:
    """Raise SpecError at the first place ``text`` exceeds a limit; YAML syntax errors propagate."""
    check_size(len(text.encode("utf-8", "surrogatepass")), file)
    total = 0
    open_at: list[tuple[str | None, int]] = []  # each open collection: its anchor, the total before it
    sizes: dict[str, int] = {}  # values under each anchor, so an alias counts what it expands to
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if not isinstance(event, NodeEvent | CollectionEndEvent):
            continue
        if isinstance(event, CollectionStartEvent):
            if len(open_at) >= MAX_DEPTH:
                _fail(file, event, f"collections nest deeper than {MAX_DEPTH} levels here; {_DEPTH_FIX}")
            open_at.append((event.anchor, total))
            total += 1
        elif isinstance(event, CollectionEndEvent):
            anchor, before = open_at.pop()
            if anchor is not None:
                sizes[anchor] = total - before
        elif isinstance(event, ScalarEvent):
            total += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, AliasEvent):
            total += sizes.get(event.anchor or "", 1)  # an unknown anchor is reported when composing
        if total > MAX_VALUES:
            message = f"the file expands to more than {MAX_VALUES} values once aliases are copied"
            _fail(file, event, f"{message}; {_ALIAS_FIX}")


def _fail(file: str, event: NodeEvent | CollectionEndEvent, message: str) -> None:
    mark = event.start_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    raise SpecError([Problem(file, line, col, message)])
