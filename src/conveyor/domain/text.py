"""Free text people attach to deployments (notes, ticket keys, emergency reasons) and the one-line
messages it ends up in: announcements, chat notifications, logs.

A line break or another control character in such text would start a new line of the message,
so a note could pose as a line written by Conveyor ("- Deployed by: @someone-else"). Requests refuse
such text; anything already stored is escaped when a one-line message is built.
"""

from __future__ import annotations

import unicodedata

from conveyor.errors import InvalidInput

# control characters (C0, DEL, C1) and the Unicode line and paragraph separators
_BREAKING = {"Cc", "Zl", "Zp"}


def _breaks(char: str) -> bool:
    return unicodedata.category(char) in _BREAKING


def check_single_line(value: str | None, what: str) -> None:
    """Raise InvalidInput when ``value`` holds a line break or another control character."""
    if value is None:
        return
    found = next((char for char in value if _breaks(char)), None)
    if found is not None:
        at = value.index(found)
        raise InvalidInput(
            f"{what} contains the control character U+{ord(found):04X} at position {at + 1}; "
            f"{what} must be a single line of text",
            fix=f"put {what} on one line, without tabs or line breaks",
        )


def single_line(value: str) -> str:
    """``value`` with every control character shown as an escape (``\\n``, ``\\x1b``, ``\\u2028``)."""
    if not any(_breaks(char) for char in value):
        return value
    return "".join(char.encode("unicode_escape").decode("ascii") if _breaks(char) else char for char in value)
