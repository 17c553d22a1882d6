"""What re-registering a service changes: a unified diff of what is registered (source, GitHub
repository, conveyor.yml) and the paths of the configuration that differ. Pure."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any


def _lines(registered: Mapping[str, str]) -> list[str]:
    head = [f"# source: {registered['source']}\n", f"# github_repository: {registered['github_repository']}\n"]
    config = registered["config"]
    return head + [line if line.endswith("\n") else line + "\n" for line in config.splitlines()]


def config_diff(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    """A unified diff, ``registered`` -> ``new``; empty when nothing differs."""
    return "".join(difflib.unified_diff(_lines(old), _lines(new), "registered/conveyor.yml", "new/conveyor.yml"))


def changed_paths(old: Any, new: Any, prefix: str = "", depth: int = 4) -> tuple[str, ...]:
    """Dotted paths (at most ``depth`` deep) where two parsed configurations differ, e.g.
    ``environments.production.gates.reviews``."""
    if old == new:
        return ()
    if depth == 0 or not isinstance(old, dict) or not isinstance(new, dict):
        return (prefix or "config",)
    out: list[str] = []
    for key in sorted(set(old) | set(new), key=str):
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in old or key not in new:
            out.append(path)
        else:
            out += changed_paths(old[key], new[key], path, depth - 1)
    return tuple(out)
