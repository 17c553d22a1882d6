"""Printing, and ConveyorError -> exit code (the error class's ``exit_code``), in one place.
--json output goes to stdout alone."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table as RichTable
from rich.text import Text

from conveyor.errors import ConveyorError

console = Console()
err = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


# columns whose values are never cut or folded: ids, dates, versions
WHOLE_COLUMNS = frozenset(
    {"id", "at", "requested", "from", "until", "version", "serving", "latest deployment", "prefix"}
)
NARROWEST = 6  # a folded column narrower than this is unreadable: the rows are shown as records instead


class Table(RichTable):
    """A CLI table that never cuts a value. The columns in WHOLE_COLUMNS keep the width of their
    longest value. When the terminal is narrower than the table, it drops its borders and the other
    columns share what is left, folding their text onto more lines; when even that leaves them too
    narrow, each row is shown as a record, one ``column  value`` line each."""

    def __init__(self, *headers: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._style = (self.box, self.show_edge, self.pad_edge, self.padding)
        for header in headers:
            self.add_column(Text(header, no_wrap=False), no_wrap=header in WHOLE_COLUMNS, overflow="fold")

    def _chrome(self) -> int:
        return self._extra_width + sum(self._get_padding_width(i) for i in range(len(self.columns)))

    def _records(self) -> RichTable:
        grid = RichTable.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for row in range(self.row_count):
            if row:
                grid.add_row("", "")
            for column in self.columns:
                grid.add_row(column.header, list(column.cells)[row])
        return grid

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        self.box, self.show_edge, self.pad_edge, self.padding = self._style
        natural, whole = [], []
        for column in self.columns:
            column.width = None
            cells = [Measurement.get(console, options, cell).maximum for cell in column.cells]
            header = Measurement.get(console, options, column.header)
            natural.append(max([header.maximum, *cells]))
            whole.append(max([header.minimum, *cells]))
        if sum(natural) + self._chrome() > options.max_width:
            self.box, self.show_edge, self.pad_edge, self.padding = box.SIMPLE_HEAD, False, False, (0, 1, 0, 0)
            flexible = [i for i, column in enumerate(self.columns) if not column.no_wrap]
            fixed = sum(w for i, w in enumerate(whole) if i not in flexible)
            free = options.max_width - self._chrome() - fixed
            wanted = sum(natural[i] for i in flexible)
            if flexible and wanted > free and free // len(flexible) < NARROWEST:
                yield self._records()
                return
            for i, column in enumerate(self.columns):
                if column.no_wrap:
                    column.width = whole[i]
                elif wanted > free:
                    column.width = max(1, free * natural[i] // wanted)
        yield from super().__rich_console__(console, options)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a ConveyorError into its message on stderr (or its problems, one FILE:LINE:COL line
    each) and the error's ``exit_code``: 1, refused or failed. Bad usage (2) is the parser's."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ConveyorError as exc:
            problems = getattr(exc, "problems", None)
            if problems:
                for problem in problems:
                    err.print(str(problem), highlight=False, soft_wrap=True)
                raise typer.Exit(exc.exit_code) from exc
            raise fail(exc.text, exc.exit_code) from exc

    return wrapper
