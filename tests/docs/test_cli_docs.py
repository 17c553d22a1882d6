"""docs/cli.md against the CLI itself (the Typer app behind `conveyor --help`), both ways.

The reference gives each command a heading, ``### `conveyor deploy ENVIRONMENT` `` (its arguments
in capitals, ``[X]`` when optional), and a table of its options whose first column names each
option, with a value in capitals when it takes one: `` `--service SERVICE`, `-s` ``. A command
group without behaviour of its own is a ``## `conveyor flags` `` heading. Every command, argument
and option of the CLI is documented, and every documented one exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from conveyor.cli.main import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
HEADING = re.compile(r"(#{2,3}) `conveyor ?([^`]*)`")


@dataclass
class Command:
    arguments: list[str] = field(default_factory=list)  # NAME, or [NAME] when optional
    options: dict[str, bool] = field(default_factory=dict)  # every spelling -> takes a value


def _walk(command: Any, path: tuple[str, ...]) -> tuple[dict[str, Command], set[str]]:
    commands: dict[str, Command] = {}
    groups: set[str] = set()
    subcommands = getattr(command, "commands", None)
    runs_itself = subcommands is None or getattr(command, "invoke_without_command", False)
    if path and runs_itself:
        found = Command()
        for param in command.params:
            if param.param_type_name == "argument":
                name = param.name.upper()
                found.arguments.append(name if param.required else f"[{name}]")
            elif "--help" not in param.opts:
                for spelling in [*param.opts, *param.secondary_opts]:
                    found.options[spelling] = not getattr(param, "is_flag", False)
        commands[" ".join(path)] = found
    elif path:
        groups.add(" ".join(path))
    for name, sub in (subcommands or {}).items():
        below, below_groups = _walk(sub, (*path, name))
        commands |= below
        groups |= below_groups
    return commands, groups


def in_the_cli() -> tuple[dict[str, Command], set[str]]:
    return _walk(typer.main.get_command(app), ())


def in_the_doc() -> tuple[dict[str, Command], set[str]]:
    commands: dict[str, Command] = {}
    groups: set[str] = set()
    current: Command | None = None
    for line in DOC.read_text().splitlines():
        if match := HEADING.fullmatch(line.strip()):
            words = match.group(2).split()
            path = " ".join(w for w in words if re.fullmatch(r"[a-z][a-z-]*", w))
            if match.group(1) == "##":
                groups.add(path)
                current = None
                continue
            assert path not in commands, f"conveyor {path} is documented twice"
            current = commands[path] = Command(arguments=[w for w in words if not re.fullmatch(r"[a-z][a-z-]*", w)])
        elif line.startswith("#"):
            current = None
        elif current is not None and line.startswith("| `-"):
            first = line.strip("|").split("|")[0]
            for spelling in re.findall(r"`([^`]+)`", first):
                name, *value = spelling.split()
                assert name.startswith("-"), f"{spelling!r} is not an option"
                current.options[name] = bool(value)
    return commands, groups


def test_every_command_is_documented_and_every_documented_one_exists() -> None:
    cli, cli_groups = in_the_cli()
    doc, doc_groups = in_the_doc()
    assert sorted(set(cli) - set(doc)) == [], "commands missing from docs/cli.md"
    assert sorted(set(doc) - set(cli)) == [], "documented commands the CLI does not have"
    assert doc_groups == cli_groups


@pytest.mark.parametrize("path", sorted(in_the_cli()[0]))
def test_arguments_and_options_match(path: str) -> None:
    cli, doc = in_the_cli()[0][path], in_the_doc()[0].get(path)
    assert doc is not None, f"conveyor {path} is not documented"
    assert doc.arguments == cli.arguments, f"conveyor {path}: arguments"
    assert sorted(set(cli.options) - set(doc.options)) == [], f"conveyor {path}: options missing from docs/cli.md"
    assert sorted(set(doc.options) - set(cli.options)) == [], f"conveyor {path}: documented options it does not have"
    wrong = {o for o in cli.options if o.startswith("--") and cli.options[o] != doc.options[o]}
    assert wrong == set(), f"conveyor {path}: documented with a value, or without one, wrongly"


@pytest.mark.parametrize("path", ["", *sorted(in_the_cli()[0]), *sorted(in_the_cli()[1])])
def test_every_help_page_prints(path: str) -> None:
    result = CliRunner().invoke(app, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
