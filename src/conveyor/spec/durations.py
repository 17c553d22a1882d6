"""Durations in conveyor.yml: "500ms", "30s", "15m", "1h30m", "2d", or a plain number of seconds."""

from __future__ import annotations

import math
import re

from conveyor.errors import InvalidInput

_UNIT_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
_NUMBER = r"\d+(?:\.\d+)?"
# Units largest first, each at most once; `m(?!s)` keeps "500ms" from reading as "500m" + "s".
_DURATION = re.compile(
    rf"(?:(?P<d>{_NUMBER})d)?(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m(?!s))?"
    rf"(?:(?P<s>{_NUMBER})s)?(?:(?P<ms>{_NUMBER})ms)?"
)
_FORMS = "use e.g. 500ms, 30s, 15m, 1h"


class DurationError(InvalidInput, ValueError):
    """A value that is not a duration. A ValueError too, so pydantic validators report it."""


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a number of seconds, or text such as "500ms", "15m", "1h30m", "2d"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise DurationError(f"{value!r} is not a duration: it must be a finite number >= 0", _FORMS)
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(_NUMBER, text):
            return float(text)
        match = _DURATION.fullmatch(text)
        if text and match:
            total_ms = sum(float(amount) * _UNIT_MS[unit] for unit, amount in match.groupdict().items() if amount)
            return total_ms / 1000
    raise DurationError(f"{value!r} is not a duration", _FORMS)


def format_duration(seconds: float) -> str:
    """The shortest text for ``seconds``, to the millisecond: 0.5 -> "500ms", 5400 -> "1h30m"."""
    if not math.isfinite(seconds) or seconds < 0:
        raise DurationError(f"{seconds!r} is not a duration: it must be a finite number >= 0", _FORMS)
    remaining = round(seconds * 1000)
    parts = []
    for unit, size in _UNIT_MS.items():
        amount, remaining = divmod(remaining, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"
