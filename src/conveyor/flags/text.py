"""Flag values and strategies as people type and read them (the CLI's side of the JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TRUE, FALSE = frozenset({"true", "on", "yes", "1"}), frozenset({"false", "off", "no", "0"})


def read_json(text: str) -> Any:
    """JSON given inline, or ``@FILE``; ValueError names what is wrong."""
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        text = path.read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


def read_value(text: str, flag_type: str) -> Any:
    """A value typed on the command line, read as a value of ``flag_type``."""
    if flag_type == "boolean":
        if text.lower() in TRUE | FALSE:
            return text.lower() in TRUE
        raise ValueError(f"{text!r} is not a boolean (true or false)")
    if flag_type == "number":
        for number in (int, float):
            try:
                return number(text)
            except ValueError:
                pass
        raise ValueError(f"{text!r} is not a number")
    if flag_type == "json":
        return read_json(text)
    return text


def describe_strategies(strategies: list[dict[str, Any]]) -> str:
    """``country IN SE,NO at 100%; all at 25%``; no strategies: ``everyone``."""
    if not strategies:
        return "everyone"
    parts = []
    for s in strategies:
        rules = " and ".join(
            f"{'not ' if c.get('inverted') else ''}{c['attribute']} {c['operator']} {','.join(c['values'])}"
            for c in s.get("constraints", [])
        )
        segments = " and ".join(f"segment {i}" for i in s.get("segments") or [])
        rules = " and ".join(filter(None, (segments, rules)))
        parts.append(f"{rules or 'all'} at {s.get('rollout', 100)}%")
    return "; ".join(parts)
