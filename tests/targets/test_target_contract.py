"""The target contract: targets see a TargetContext (no database, no engine), and every built-in
target answers the whole Target protocol, warm_workdir included."""

from __future__ import annotations

import ast
from pathlib import Path

import conveyor.targets
from conveyor.targets.base import TARGETS, Target, target_for

TARGETS_DIR = Path(conveyor.targets.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_targets_import_nothing_of_the_engine_or_the_store_connections() -> None:
    for path in sorted(TARGETS_DIR.glob("*.py")):
        modules = imported_modules(path)
        assert not {m for m in modules if m == "conveyor.engine" or m.startswith("conveyor.engine.")}, path.name
        assert "conveyor.runtime" not in modules and "conveyor.store.db" not in modules, path.name


def test_every_built_in_target_implements_the_whole_protocol() -> None:
    protocol = {name for name in vars(Target) if not name.startswith("_")}
    assert protocol == {"deploy", "restore", "warm_workdir"}
    for kind in TARGETS.names():
        target = target_for(kind)
        assert all(callable(getattr(target, name, None)) for name in protocol), kind
