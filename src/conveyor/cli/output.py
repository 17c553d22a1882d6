"""Printing, and ConveyorError -> exit code, in one place. --json output goes to stdout alone."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from conveyor.errors import ConveyorError

console = Console()
err = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a ConveyorError into its message on stderr and exit code 1 (2 for bad usage)."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ConveyorError as exc:
            problems = getattr(exc, "problems", None)
            if problems:
                for problem in problems:
                    err.print(str(problem), highlight=False, soft_wrap=True)
                raise typer.Exit(1) from exc
            raise fail(exc.text) from exc

    return wrapper
