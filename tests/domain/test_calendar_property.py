"""The schedule agrees with a deliberately simple reference: judge each UTC minute by converting it to
the zone's wall clock and checking every rule directly, with the ``holidays`` package used directly."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conveyor.domain.calendar import Freeze, Schedule, build_schedule, closes_at, evaluate, next_opening, spans

MINUTE = timedelta(minutes=1)
SCAN_LIMIT = timedelta(days=10)
FIRST, LAST = datetime(2025, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC)

# Window texts and what they mean, written out by hand rather than parsed.
WINDOWS: dict[str, tuple[set[int], int, int]] = {
    "Tue-Thu 10:00-15:00": ({1, 2, 3}, 600, 900),
    "Mon,Wed 09:30-17:00": ({0, 2}, 570, 1020),
    "Fri 12:00-24:00": ({4}, 720, 1440),
    "Sat-Sun 00:00-24:00": ({5, 6}, 0, 1440),
    "Mon-Fri 00:00-24:00": ({0, 1, 2, 3, 4}, 0, 1440),
    "Fri-Mon 22:00-24:00": ({4, 5, 6, 0}, 1320, 1440),
    "Sun 01:00-03:00": ({6}, 60, 180),
    "Sun 02:30-04:00": ({6}, 150, 240),
    "Sat-Sun 02:15-02:45": ({5, 6}, 135, 165),
    "Mon-Sun 00:00-00:30": (set(range(7)), 0, 30),
    "Mon-Sun 23:59-24:00": (set(range(7)), 1439, 1440),
}
ZONES = ["America/Los_Angeles", "Europe/Berlin", "UTC", "Australia/Lord_Howe", "America/Santiago"]
TRANSITIONS = [  # (zone, an instant when its wall clock jumps), 2025-2028
    ("America/Los_Angeles", datetime(2026, 3, 8, 10, 0, tzinfo=UTC)),  # spring forward
    ("America/Los_Angeles", datetime(2026, 11, 1, 9, 0, tzinfo=UTC)),  # fall back
    ("America/Los_Angeles", datetime(2027, 3, 14, 10, 0, tzinfo=UTC)),
    ("America/Los_Angeles", datetime(2025, 11, 2, 9, 0, tzinfo=UTC)),
    ("Europe/Berlin", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
    ("Europe/Berlin", datetime(2026, 10, 25, 1, 0, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, 0, tzinfo=UTC)),  # half an hour
    ("Australia/Lord_Howe", datetime(2026, 10, 3, 15, 30, tzinfo=UTC)),
    ("America/Santiago", datetime(2026, 4, 5, 3, 0, tzinfo=UTC)),  # at midnight
    ("America/Santiago", datetime(2026, 9, 6, 4, 0, tzinfo=UTC)),
]


@dataclass(frozen=True)
class Case:
    zone: str
    allow: tuple[str, ...]
    deny: tuple[str, ...]
    weekends_closed: bool
    country: str | None
    freeze: tuple[datetime, datetime | None] | None

    def schedule(self) -> Schedule:
        config: dict[str, object] = {
            "timezone": self.zone,
            "allow": list(self.allow),
            "deny": list(self.deny),
            "weekends": "closed" if self.weekends_closed else "open",
        }
        if self.country:
            config["holidays"] = self.country
        freezes = [Freeze(self.freeze[0], self.freeze[1], "test freeze")] if self.freeze else []
        return build_schedule(config, freezes)


@cache
def us_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("US", years=year, observed=True))


def reference_open(case: Case, minute: datetime) -> bool:
    """Is this UTC minute open? Every rule, checked directly on the wall clock."""
    if case.freeze is not None:
        start, end = case.freeze
        if start <= minute and (end is None or minute < end):
            return False
    local = minute.astimezone(ZoneInfo(case.zone))
    day, wall = local.weekday(), local.hour * 60 + local.minute
    if case.country == "US" and local.date() in us_holidays(local.year):
        return False
    if case.weekends_closed and day >= 5:
        return False

    def inside(text: str) -> bool:
        days, start, end = WINDOWS[text]
        return day in days and start <= wall < end

    if any(inside(text) for text in case.deny):
        return False
    return not case.allow or any(inside(text) for text in case.allow)


minutes = st.integers(0, int((LAST - FIRST) / MINUTE) - 1).map(lambda n: FIRST + n * MINUTE)
anywhere = st.tuples(minutes, st.sampled_from(ZONES))
# Within a day and a half of a transition, in the zone that makes it.
near_transitions = st.builds(
    lambda transition, offset: (transition[1] + offset * MINUTE, transition[0]),
    st.sampled_from(TRANSITIONS),
    st.integers(-2160, 2160),
)
window_sets = st.lists(st.sampled_from(sorted(WINDOWS)), max_size=3, unique=True).map(tuple)


@st.composite
def cases(draw: st.DrawFn, at: datetime, zone: str) -> Case:
    freeze = None
    if draw(st.booleans()):
        start = at + draw(st.integers(-2 * 1440, 2 * 1440)) * MINUTE
        length = draw(st.one_of(st.none(), st.integers(1, 3 * 1440)))
        freeze = (start, None if length is None else start + length * MINUTE)
    return Case(
        zone=zone,
        allow=draw(window_sets),
        deny=draw(st.lists(st.sampled_from(sorted(WINDOWS)), max_size=2, unique=True).map(tuple)),
        weekends_closed=draw(st.booleans()),
        country=draw(st.sampled_from(["US", None])),
        freeze=freeze,
    )


at_and_case = st.one_of(anywhere, near_transitions).flatmap(lambda drawn: st.tuples(st.just(drawn[0]), cases(*drawn)))
quick = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
scanning = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@quick
@given(at_and_case)
def test_evaluate_agrees_with_the_reference(drawn: tuple[datetime, Case]) -> None:
    at, case = drawn
    verdict = evaluate(case.schedule(), at)
    assert verdict.open == reference_open(case, at), verdict.reason
    assert verdict.reason.startswith("open: " if verdict.open else "closed: ")


@scanning
@given(at_and_case)
def test_next_opening_is_the_first_open_minute(drawn: tuple[datetime, Case]) -> None:
    at, case = drawn
    found = next_opening(case.schedule(), at)
    assume(found is not None and found - at <= SCAN_LIMIT)
    assert found is not None
    found = found.astimezone(UTC)
    assert reference_open(case, found)
    minute = at
    while minute < found:
        assert not reference_open(case, minute), f"{minute} is open, before {found}"
        minute += MINUTE


@scanning
@given(at_and_case)
def test_closes_at_is_the_first_closed_minute(drawn: tuple[datetime, Case]) -> None:
    at, case = drawn
    found = closes_at(case.schedule(), at)
    assume(found is not None and found - at <= SCAN_LIMIT)
    assert found is not None
    found = found.astimezone(UTC)
    assert found >= at and not reference_open(case, found)
    minute = at
    while minute < found:
        assert reference_open(case, minute), f"{minute} is closed, before {found}"
        minute += MINUTE


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(at_and_case)
def test_spans_cover_two_days_minute_by_minute(drawn: tuple[datetime, Case]) -> None:
    at, case = drawn
    result = spans(case.schedule(), at, 2)
    assert result[0].start.astimezone(UTC) == at  # in UTC: see PEP 495 on fall-back times
    for before, after in itertools.pairwise(result):
        assert before.end.astimezone(UTC) == after.start.astimezone(UTC)
        assert (before.open, before.reason) != (after.open, after.reason)
    for span in result:
        minute, end = span.start.astimezone(UTC), span.end.astimezone(UTC)
        while minute < end:
            assert reference_open(case, minute) == span.open, f"{minute} in {span}"
            minute += MINUTE
