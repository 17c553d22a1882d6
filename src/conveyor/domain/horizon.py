"""The years the deploy calendar judges: 1970 through 2099.

Holiday calendars end with 2100 (past it every holiday silently disappears), and searches for the
next opening look up to 400 days ahead, which from year 9999 overflows ``datetime``. An instant
outside these years is bad input, refused with the range rather than judged wrongly or crashing.
"""

from __future__ import annotations

from datetime import datetime

from conveyor.errors import InvalidInput

FIRST_YEAR = 1970
LAST_YEAR = 2099


def within_calendar(value: datetime, what: str) -> datetime:
    """``value`` itself when the calendar can judge it; else InvalidInput naming it and the range."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise InvalidInput(
            f"{what} {value.isoformat()} is outside the years the deploy calendar covers "
            f"({FIRST_YEAR}-01-01 to {LAST_YEAR}-12-31)",
            fix=f"give a time from {FIRST_YEAR} through {LAST_YEAR}",
        )
    return value
