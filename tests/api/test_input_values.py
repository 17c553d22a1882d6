"""The pure checks behind the API's refusals: one-line text and the calendar's years."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conveyor.domain.horizon import within_calendar
from conveyor.domain.text import check_single_line, single_line
from conveyor.errors import InvalidInput


def test_stored_text_with_line_breaks_is_escaped_onto_one_line() -> None:
    note = "ok\n- Deployed by: @ada\r\x1b[2K\u2028\u0085\tend"
    assert single_line(note) == "ok\\n- Deployed by: @ada\\r\\x1b[2K\\u2028\\x85\\tend"
    assert len(single_line(note).splitlines()) == 1
    assert single_line("fix — «v2» ✅") == "fix — «v2» ✅"


def test_line_breaks_are_refused_with_the_character_and_its_position() -> None:
    check_single_line(None, "notes")
    check_single_line("fix — «v2» ✅", "notes")
    with pytest.raises(InvalidInput) as caught:
        check_single_line("a\u2029b", "reason")
    assert caught.value.message == (
        "reason contains the control character U+2029 at position 2; reason must be a single line of text"
    )


@pytest.mark.parametrize(("year", "ok"), [(1, False), (1969, False), (1970, True), (2099, True), (2100, False)])
def test_the_calendar_covers_1970_through_2099(year: int, ok: bool) -> None:
    at = datetime(year, 6, 1, tzinfo=UTC)
    if ok:
        assert within_calendar(at, "at") is at
    else:
        with pytest.raises(InvalidInput, match=r"outside the years the deploy calendar covers \(1970-01-01 to 2099"):
            within_calendar(at, "at")
