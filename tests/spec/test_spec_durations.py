import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.errors import InvalidInput
from conveyor.spec import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("1s", 1.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1m30s250ms", 90.25),
        ("1.5h", 5400.0),
        (" 30s ", 30.0),
        ("0", 0.0),
        (45, 45.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration_accepts(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("value", ["", "   ", "10 minutes", "1x", "-5s", "30m1h", "1h 30m", "ms", -1, True, None])
def test_parse_duration_rejects_naming_value_and_forms(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_duration(value)
    assert repr(value) in str(caught.value)
    assert "500ms, 30s, 15m, 1h" in str(caught.value)


def test_duration_error_is_a_value_error_so_pydantic_reports_it() -> None:
    with pytest.raises(ValueError, match=r"'1x' is not a duration \(use e.g. 500ms, 30s, 15m, 1h\)"):
        parse_duration("1x")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.5, "500ms"), (900, "15m"), (5400, "1h30m"), (90.25, "1m30s250ms"), (172800, "2d")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_rejects_negative() -> None:
    with pytest.raises(InvalidInput, match="-1"):
        format_duration(-1)


@given(st.integers(min_value=0, max_value=10**12))
def test_format_then_parse_round_trips_to_the_millisecond(milliseconds: int) -> None:
    seconds = milliseconds / 1000
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert format_duration(parse_duration(text)) == text
