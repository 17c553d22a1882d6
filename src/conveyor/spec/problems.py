"""Problems found in a conveyor.yml, each at a FILE:LINE:COL, and where each YAML node starts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from conveyor.errors import InvalidInput
from conveyor.spec.models import Loc


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file; ``line`` and ``col`` count from 1."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


def format_problems(problems: Iterable[Problem]) -> str:
    """One ``FILE:LINE:COL: message`` line per problem."""
    return "\n".join(str(problem) for problem in problems)


class SpecError(InvalidInput):
    """A conveyor.yml that cannot be used; ``problems`` lists everything wrong with it.
    The API answers it 422 with the problems, one ``FILE:LINE:COL: message`` each."""

    http_status = 422

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(format_problems(problems))


@dataclass
class Positions:
    """Where each value and each mapping key of a YAML file starts, by its path in the data."""

    file: str
    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def problem(self, path: Loc, message: str, *, at_key: bool = False) -> Problem:
        """A problem at the key of ``path`` or at its value; else at the nearest enclosing value."""
        if at_key and path in self.keys:
            return Problem(self.file, *self.keys[path], message)
        for end in range(len(path), -1, -1):
            if path[:end] in self.values:
                return Problem(self.file, *self.values[path[:end]], message)
        return Problem(self.file, 1, 1, message)


def dotted(path: Loc) -> str:
    """``("environments", "staging", "notify", 0)`` -> ``"environments.staging.notify[0]"``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text
