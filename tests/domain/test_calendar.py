"""The deploy schedule: instants judged against the process document's schedule and a few others.

The process document says: regular deployments Tuesday-Thursday 10 AM - 3 PM Pacific; none on
Fridays after 12 PM, weekends or holidays. Every row names the instant, whether it is open, a piece of
the reason, and for a closed instant the exact next opening.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest

from conveyor.domain.calendar import (
    Freeze,
    Schedule,
    Window,
    build_schedule,
    closes_at,
    evaluate,
    next_opening,
    parse_window,
    spans,
)
from conveyor.errors import InvalidInput

LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")
LONDON = ZoneInfo("Europe/London")

PROCESS_CONFIG: dict[str, Any] = {
    "timezone": "America/Los_Angeles",
    "allow": ["Tue-Thu 10:00-15:00"],
    "deny": ["Fri 12:00-24:00"],
    "holidays": "US",
    "emergency": {"approvers": ["manager"]},
}


def la(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=LA)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def london(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


def as_utc(instant: datetime | None) -> datetime | None:
    return None if instant is None else instant.astimezone(UTC)


def with_config(**changes: Any) -> dict[str, Any]:
    return {**PROCESS_CONFIG, **changes}


END_OF_YEAR = Freeze(la(2026, 11, 30, 0, 0), la(2026, 12, 2, 11, 30), "end-of-year freeze")
INCIDENT = Freeze(la(2026, 12, 1, 12, 0), None, "incident 42")

SCHEDULES: Mapping[str, Schedule] = {
    "process": build_schedule(PROCESS_CONFIG),
    # An allow window that includes Friday, to show the deny window wins.
    "weekdays": build_schedule(with_config(allow=["Mon-Fri 09:00-17:00"])),
    "bavaria": build_schedule(
        {
            "timezone": "Europe/Berlin",
            "allow": ["Mon-Fri 09:00-17:00"],
            "holidays": {"country": "DE", "subdivision": "BY"},
        }
    ),
    "germany": build_schedule({"timezone": "Europe/Berlin", "allow": ["Mon-Fri 09:00-17:00"], "holidays": "DE"}),
    "scotland": build_schedule(
        {
            "timezone": "Europe/London",
            "allow": ["Mon-Fri 09:00-17:00"],
            "holidays": {"country": "GB", "subdivision": "SCT"},
        }
    ),
    "extra": build_schedule(with_config(holidays={"country": "US", "extra": {"2026-12-24": "Christmas Eve"}})),
    "freeze": build_schedule(PROCESS_CONFIG, [END_OF_YEAR]),
    "incident": build_schedule(PROCESS_CONFIG, [INCIDENT]),
    "utc-open-weekends": build_schedule({"timezone": "UTC", "weekends": "open"}),
    "utc": build_schedule({"timezone": "UTC"}),
    # Windows inside the hours that daylight saving skips or repeats.
    "sunday-1am": build_schedule({"timezone": "America/Los_Angeles", "weekends": "open", "allow": ["Sun 01:00-02:00"]}),
    "sunday-2am": build_schedule({"timezone": "America/Los_Angeles", "weekends": "open", "allow": ["Sun 02:00-03:00"]}),
    "sunday-230": build_schedule({"timezone": "America/Los_Angeles", "weekends": "open", "allow": ["Sun 02:30-04:00"]}),
}

OUTSIDE = "closed: outside Tue-Thu 10:00-15:00 America/Los_Angeles"
INSIDE = "open: inside Tue-Thu 10:00-15:00 (America/Los_Angeles)"
FRIDAY = "closed: Friday after 12:00 America/Los_Angeles (deny Fri 12:00-24:00)"

# (id, schedule, instant, open, reason fragment, next opening when closed)
CASES: list[tuple[str, str, datetime, bool, str, datetime | None]] = [
    # Window edges, Tuesday and Thursday, in PST and PDT.
    ("tue 10:00 PST as UTC", "process", utc(2026, 3, 3, 18, 0), True, INSIDE, None),
    ("tue 09:59 PST as UTC", "process", utc(2026, 3, 3, 17, 59), False, OUTSIDE, utc(2026, 3, 3, 18, 0)),
    ("tue 10:00 PDT as UTC", "process", utc(2026, 3, 10, 17, 0), True, INSIDE, None),
    ("tue 09:59 PDT as UTC", "process", utc(2026, 3, 10, 16, 59), False, OUTSIDE, utc(2026, 3, 10, 17, 0)),
    ("tue 14:59", "process", la(2026, 3, 10, 14, 59), True, INSIDE, None),
    ("tue 15:00", "process", la(2026, 3, 10, 15, 0), False, OUTSIDE, la(2026, 3, 11, 10, 0)),
    ("thu 09:59", "process", la(2026, 3, 12, 9, 59), False, OUTSIDE, la(2026, 3, 12, 10, 0)),
    ("thu 10:00", "process", la(2026, 3, 12, 10, 0), True, INSIDE, None),
    ("thu 14:59", "process", la(2026, 3, 12, 14, 59), True, INSIDE, None),
    ("thu 15:00", "process", la(2026, 3, 12, 15, 0), False, OUTSIDE, la(2026, 3, 17, 10, 0)),
    # Spring forward, Sunday 2026-03-08 02:00 PST -> 03:00 PDT; fall back, Sunday 2026-11-01 02:00 PDT -> 01:00 PST.
    ("spring forward 01:59 PST", "process", utc(2026, 3, 8, 9, 59), False, "weekend (Sunday)", la(2026, 3, 10, 10, 0)),
    ("spring forward 03:00 PDT", "process", utc(2026, 3, 8, 10, 0), False, "weekend (Sunday)", la(2026, 3, 10, 10, 0)),
    ("fall back 01:30 PDT", "process", utc(2026, 11, 1, 8, 30), False, "weekend (Sunday)", utc(2026, 11, 3, 18, 0)),
    ("fall back 01:30 PST", "process", utc(2026, 11, 1, 9, 30), False, "weekend (Sunday)", utc(2026, 11, 3, 18, 0)),
    ("tue before fall back 10:00 PDT", "process", utc(2026, 10, 27, 17, 0), True, INSIDE, None),
    ("tue after fall back 09:00 PST", "process", utc(2026, 11, 3, 17, 0), False, OUTSIDE, utc(2026, 11, 3, 18, 0)),
    ("tue after fall back 10:00 PST", "process", utc(2026, 11, 3, 18, 0), True, INSIDE, None),
    ("repeated hour, first 01:30", "sunday-1am", utc(2026, 11, 1, 8, 30), True, "inside Sun 01:00-02:00", None),
    ("repeated hour, second 01:30", "sunday-1am", utc(2026, 11, 1, 9, 30), True, "inside Sun 01:00-02:00", None),
    ("after repeated hour 02:00 PST", "sunday-1am", utc(2026, 11, 1, 10, 0), False, "outside", la(2026, 11, 8, 1, 0)),
    ("skipped hour never opens", "sunday-2am", utc(2026, 3, 8, 9, 59), False, "outside", la(2026, 3, 15, 2, 0)),
    ("window opens at the jump", "sunday-230", utc(2026, 3, 8, 9, 59), False, "outside", la(2026, 3, 8, 3, 0)),
    ("window open after the jump", "sunday-230", utc(2026, 3, 8, 10, 0), True, "inside Sun 02:30-04:00", None),
    # Fridays: closed all day under the process schedule; the deny window beats an allow window.
    ("fri 11:59 outside", "process", la(2026, 3, 13, 11, 59), False, OUTSIDE, la(2026, 3, 17, 10, 0)),
    ("fri 12:00 denied", "process", la(2026, 3, 13, 12, 0), False, FRIDAY, la(2026, 3, 17, 10, 0)),
    ("fri 23:59 denied", "process", la(2026, 3, 13, 23, 59), False, FRIDAY, la(2026, 3, 17, 10, 0)),
    ("fri 11:59 allowed", "weekdays", la(2026, 3, 13, 11, 59), True, "inside Mon-Fri 09:00-17:00", None),
    ("fri 12:00 deny beats allow", "weekdays", la(2026, 3, 13, 12, 0), False, FRIDAY, la(2026, 3, 16, 9, 0)),
    ("fri PST deny, opens PDT", "weekdays", la(2026, 3, 6, 12, 0), False, "Friday after 12:00", la(2026, 3, 9, 9, 0)),
    ("mon 08:59 after DST", "weekdays", la(2026, 3, 9, 8, 59), False, "outside Mon-Fri", la(2026, 3, 9, 9, 0)),
    # Weekends and plain weekdays outside the window.
    ("saturday", "process", la(2026, 3, 14, 12, 0), False, "closed: weekend (Saturday)", la(2026, 3, 17, 10, 0)),
    ("sunday", "process", la(2026, 3, 15, 12, 0), False, "closed: weekend (Sunday)", la(2026, 3, 17, 10, 0)),
    ("monday", "process", la(2026, 3, 16, 12, 0), False, OUTSIDE, la(2026, 3, 17, 10, 0)),
    ("weekends open", "utc-open-weekends", utc(2026, 3, 14, 12, 0), True, "open: no allow windows", None),
    ("weekends closed", "utc", utc(2026, 3, 14, 12, 0), False, "weekend (Saturday)", utc(2026, 3, 16, 0, 0)),
    # US holidays, including ones that move and observed ones.
    ("new year", "process", la(2026, 1, 1, 11, 0), False, "closed: New Year's Day (US holiday)", la(2026, 1, 6, 10, 0)),
    ("mlk day", "weekdays", la(2026, 1, 19, 11, 0), False, "Martin Luther King Jr. Day (US", la(2026, 1, 20, 9, 0)),
    (
        "memorial day",
        "weekdays",
        la(2026, 5, 25, 11, 0),
        False,
        "closed: Memorial Day (US holiday)",
        la(2026, 5, 26, 9, 0),
    ),
    ("labor day", "weekdays", la(2026, 9, 7, 11, 0), False, "closed: Labor Day (US holiday)", la(2026, 9, 8, 9, 0)),
    (
        "veterans day wed",
        "process",
        la(2026, 11, 11, 11, 0),
        False,
        "Veterans Day (US holiday)",
        la(2026, 11, 12, 10, 0),
    ),
    ("before thanksgiving", "process", la(2026, 11, 25, 11, 0), True, INSIDE, None),
    (
        "thanksgiving",
        "process",
        la(2026, 11, 26, 11, 0),
        False,
        "closed: Thanksgiving Day (US holiday)",
        la(2026, 12, 1, 10, 0),
    ),
    (
        "thanksgiving 2027",
        "process",
        la(2027, 11, 25, 11, 0),
        False,
        "Thanksgiving Day (US holiday)",
        la(2027, 11, 30, 10, 0),
    ),
    (
        "july 4 observed fri",
        "weekdays",
        la(2026, 7, 3, 10, 0),
        False,
        "Independence Day (observed) (US holiday)",
        la(2026, 7, 6, 9, 0),
    ),
    (
        "july 4 on saturday",
        "weekdays",
        la(2026, 7, 4, 10, 0),
        False,
        "closed: Independence Day (US holiday)",
        la(2026, 7, 6, 9, 0),
    ),
    (
        "christmas 2027 observed",
        "weekdays",
        la(2027, 12, 24, 10, 0),
        False,
        "Christmas Day (observed) (US",
        la(2027, 12, 27, 9, 0),
    ),
    # Another country's calendar: Epiphany is a Bavarian holiday, not a German national one.
    (
        "epiphany in bavaria",
        "bavaria",
        berlin(2026, 1, 6, 10, 0),
        False,
        "closed: Epiphany (DE-BY holiday)",
        berlin(2026, 1, 7, 9, 0),
    ),
    (
        "epiphany in germany",
        "germany",
        berlin(2026, 1, 6, 10, 0),
        True,
        "inside Mon-Fri 09:00-17:00 (Europe/Berlin)",
        None,
    ),
    (
        "corpus christi bavaria",
        "bavaria",
        berlin(2026, 6, 4, 10, 0),
        False,
        "Corpus Christi (DE-BY",
        berlin(2026, 6, 5, 9, 0),
    ),
    (
        "berlin CET 08:59",
        "bavaria",
        utc(2026, 3, 27, 7, 59),
        False,
        "outside Mon-Fri 09:00-17:00 Europe/Berlin",
        utc(2026, 3, 27, 8, 0),
    ),
    ("berlin CEST 08:59", "bavaria", utc(2026, 3, 30, 6, 59), False, "outside", utc(2026, 3, 30, 7, 0)),
    (
        "st andrew's day",
        "scotland",
        london(2026, 11, 30, 10, 0),
        False,
        "Saint Andrew's Day (GB-SCT holiday)",
        london(2026, 12, 1, 9, 0),
    ),
    # An extra named date.
    (
        "christmas eve extra",
        "extra",
        la(2026, 12, 24, 11, 0),
        False,
        "closed: Christmas Eve (extra holiday)",
        la(2026, 12, 29, 10, 0),
    ),
    ("day before extra", "extra", la(2026, 12, 23, 11, 0), True, INSIDE, None),
    ("christmas eve without extra", "process", la(2026, 12, 24, 11, 0), True, INSIDE, None),
    # One-off freezes, with an end and until lifted.
    ("before freeze", "freeze", la(2026, 11, 24, 11, 0), True, INSIDE, None),
    (
        "in freeze",
        "freeze",
        la(2026, 12, 1, 11, 0),
        False,
        "closed: freeze until 2026-12-02 11:30 PST: end-of-year freeze",
        la(2026, 12, 2, 11, 30),
    ),
    ("freeze end", "freeze", la(2026, 12, 2, 11, 30), True, INSIDE, None),
    ("before open freeze", "incident", la(2026, 12, 1, 11, 59), True, INSIDE, None),
    (
        "freeze until lifted",
        "incident",
        la(2026, 12, 1, 12, 0),
        False,
        "closed: freeze until lifted: incident 42",
        None,
    ),
]


@pytest.mark.parametrize(
    ("schedule", "at", "is_open", "reason", "next_open"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_instants(schedule: str, at: datetime, is_open: bool, reason: str, next_open: datetime | None) -> None:
    plan = SCHEDULES[schedule]
    verdict = evaluate(plan, at)
    assert verdict.open is is_open, verdict.reason
    assert reason in verdict.reason
    # Compared in UTC: Python never calls a fall-back wall time equal to a time in another zone (PEP 495).
    assert as_utc(verdict.local) == as_utc(at) and verdict.local.tzinfo is plan.timezone
    if is_open:
        assert verdict.next_open is None
        assert verdict.closes_at is not None or not plan.allow
    else:
        assert verdict.closes_at is None
        assert as_utc(verdict.next_open) == as_utc(next_open)
        assert as_utc(next_opening(plan, at)) == as_utc(next_open)
        if next_open is not None:
            assert verdict.next_open is not None and verdict.next_open.tzinfo is plan.timezone
            assert evaluate(plan, next_open).open
            assert not evaluate(plan, next_open.astimezone(UTC) - timedelta(minutes=1)).open


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40


def test_reasons_read_exactly() -> None:
    plan = SCHEDULES["process"]
    assert evaluate(plan, la(2026, 3, 10, 10, 0)).reason == INSIDE
    assert evaluate(plan, la(2026, 3, 13, 12, 0)).reason == FRIDAY
    assert evaluate(plan, la(2026, 11, 26, 11, 0)).reason == "closed: Thanksgiving Day (US holiday)"
    assert evaluate(plan, la(2026, 3, 14, 11, 0)).reason == "closed: weekend (Saturday)"
    assert evaluate(plan, la(2026, 3, 16, 11, 0)).reason == OUTSIDE
    frozen = build_schedule(
        PROCESS_CONFIG, [Freeze(la(2026, 11, 30, 0, 0), la(2026, 12, 2, 9, 0), "end-of-year freeze")]
    )
    assert (
        evaluate(frozen, la(2026, 12, 1, 11, 0)).reason
        == "closed: freeze until 2026-12-02 09:00 PST: end-of-year freeze"
    )


def test_the_package_names_observed_days_this_way() -> None:
    us = holidays.country_holidays("US", years=[2026, 2027], observed=True)
    assert us.get("2026-07-03") == "Independence Day (observed)"
    assert us.get("2027-12-24") == "Christmas Day (observed)"
    assert us.get("2026-11-26") == "Thanksgiving Day"


def test_holiday_names_do_not_follow_the_process_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGUAGE", "de")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    plan = build_schedule({"timezone": "Europe/Berlin", "holidays": {"country": "DE", "subdivision": "BY"}})
    assert evaluate(plan, berlin(2031, 1, 6, 10, 0)).reason == "closed: Epiphany (DE-BY holiday)"


def test_deny_reasons_read_naturally() -> None:
    cases = {
        "Sat-Sun 00:00-24:00": (la(2026, 3, 14, 10, 0), "Saturday all day"),
        "Mon 00:00-09:00": (la(2026, 3, 16, 8, 0), "Monday before 09:00"),
        "Wed 12:00-13:00": (la(2026, 3, 11, 12, 30), "Wednesday 12:00-13:00"),
    }
    for window, (at, text) in cases.items():
        plan = build_schedule({"timezone": "America/Los_Angeles", "weekends": "open", "deny": [window]})
        assert evaluate(plan, at).reason == f"closed: {text} America/Los_Angeles (deny {window})"


def test_an_instant_is_judged_by_its_minute() -> None:
    plan = SCHEDULES["process"]
    early = la(2026, 3, 10, 9, 59, 30)
    assert not evaluate(plan, early).open
    assert next_opening(plan, early) == la(2026, 3, 10, 10, 0)
    assert evaluate(plan, la(2026, 3, 10, 14, 59, 59)).open
    assert next_opening(plan, la(2026, 3, 10, 10, 0, 1)) == la(2026, 3, 10, 10, 1)


def test_closes_at() -> None:
    plan = SCHEDULES["process"]
    assert closes_at(plan, la(2026, 3, 10, 12, 0)) == la(2026, 3, 10, 15, 0)
    assert evaluate(plan, la(2026, 3, 10, 12, 0)).closes_at == la(2026, 3, 10, 15, 0)
    assert closes_at(SCHEDULES["incident"], la(2026, 12, 1, 11, 0)) == la(2026, 12, 1, 12, 0)
    assert closes_at(SCHEDULES["utc-open-weekends"], utc(2026, 3, 14, 12, 0)) is None
    # Both occurrences of the repeated hour are open: two real hours.
    assert closes_at(SCHEDULES["sunday-1am"], utc(2026, 11, 1, 8, 30)) == utc(2026, 11, 1, 10, 0)
    # Closed already: the minute itself.
    assert closes_at(plan, la(2026, 3, 14, 12, 0)) == la(2026, 3, 14, 12, 0)


def test_next_opening_gives_up_at_the_horizon_and_is_quick() -> None:
    never = build_schedule({"timezone": "America/Los_Angeles", "allow": ["Sat 10:00-11:00"]})
    started = time.perf_counter()
    assert next_opening(never, utc(2026, 1, 1, 0, 0)) is None
    assert evaluate(never, utc(2026, 1, 1, 0, 0)).next_open is None
    assert time.perf_counter() - started < 1.0
    assert next_opening(SCHEDULES["process"], la(2026, 3, 13, 12, 0), horizon_days=2) is None
    assert next_opening(SCHEDULES["process"], la(2026, 3, 13, 12, 0), horizon_days=4) == la(2026, 3, 17, 10, 0)


def test_spans_cover_a_week_with_a_dst_change() -> None:
    start = la(2026, 3, 5, 0, 0)
    result = spans(SCHEDULES["process"], start, 7)
    assert result[0].start == start and result[-1].end == la(2026, 3, 12, 0, 0)
    assert all(a.end == b.start for a, b in itertools.pairwise(result))
    assert all(span.start.tzinfo is LA for span in result)
    opened = [(span.start, span.end) for span in result if span.open]
    assert opened == [
        (la(2026, 3, 5, 10, 0), la(2026, 3, 5, 15, 0)),
        (la(2026, 3, 10, 10, 0), la(2026, 3, 10, 15, 0)),
        (la(2026, 3, 11, 10, 0), la(2026, 3, 11, 15, 0)),
    ]
    reasons = [span.reason for span in result if not span.open]
    assert FRIDAY in reasons and "closed: weekend (Saturday)" in reasons and "closed: weekend (Sunday)" in reasons
    for span in result:
        assert evaluate(SCHEDULES["process"], span.start).reason == span.reason
    assert spans(SCHEDULES["process"], start, 0) == []


# ---- configuration ----


@pytest.mark.parametrize(
    ("text", "days", "start", "end"),
    [
        ("Tue-Thu 10:00-15:00", {1, 2, 3}, 600, 900),
        ("Mon,Wed 09:30-17:00", {0, 2}, 570, 1020),
        ("Fri 12:00-24:00", {4}, 720, 1440),
        ("Sat-Sun 00:00-24:00", {5, 6}, 0, 1440),
        ("Mon-Fri 00:00-24:00", {0, 1, 2, 3, 4}, 0, 1440),
        ("Fri-Mon 22:00-23:00", {4, 5, 6, 0}, 1320, 1380),
        ("sun-sat 08:00-08:05", set(range(7)), 480, 485),
        ("Monday, Thu-Fri 9:00-10:00", {0, 3, 4}, 540, 600),
    ],
)
def test_parse_window(text: str, days: set[int], start: int, end: int) -> None:
    assert parse_window(text) == Window(frozenset(days), start, end, text)


@pytest.mark.parametrize(
    "text",
    [
        "Tue-Thu 10-15",
        "Tue 15:00-10:00",
        "Funday 10:00-11:00",
        "Tue 10:00-10:00",
        "Tue-Thu",
        "10:00-15:00",
        "",
        "Tue 10:00-24:30",
        "Tue 24:00-24:00",
        "Tue 09:60-10:00",
        "Tue- 10:00-11:00",
        "Tue,,Thu 10:00-11:00",
        "Tue Thu 10:00-11:00",
        "Tue 10:00-11:00 PST",
    ],
)
def test_parse_window_refuses(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_window(text)
    assert repr(text) in raised.value.message
    assert raised.value.fix


def test_build_schedule_reads_the_process_config() -> None:
    plan = SCHEDULES["process"]
    assert plan.timezone == LA
    assert plan.allow == (parse_window("Tue-Thu 10:00-15:00"),)
    assert plan.deny == (parse_window("Fri 12:00-24:00"),)
    assert plan.weekends is True
    assert (plan.holiday_country, plan.holiday_subdivision) == ("US", None)
    assert dict(plan.extra_holidays) == {} and plan.freezes == ()
    assert hash(plan) == hash(build_schedule(PROCESS_CONFIG))


@pytest.mark.parametrize(
    ("config", "named", "fix"),
    [
        (with_config(timezone="PST"), "'PST'", "America/Los_Angeles"),
        (with_config(timezone="PDT"), "'PDT'", "America/Los_Angeles"),
        (with_config(timezone="EST"), "'EST'", "America/New_York"),
        (with_config(timezone="Pacific Time"), "'Pacific Time'", "America/Los_Angeles"),
        (with_config(timezone="Mars/Olympus_Mons"), "'Mars/Olympus_Mons'", "IANA"),
        (with_config(timezone="localtime"), "'localtime'", "IANA"),
        ({"allow": ["Tue-Thu 10:00-15:00"]}, "no timezone", "America/Los_Angeles"),
        (with_config(holidays="XX"), "'XX'", "US, GB, DE"),
        (with_config(holidays={"country": "DE", "subdivision": "ZZ"}), "'ZZ'", "BY"),
        (with_config(holidays={"country": "US", "state": "CA"}), "'state'", "country, extra, subdivision"),
        (
            with_config(holidays={"country": "US", "extra": {"24.12.2026": "Christmas Eve"}}),
            "'24.12.2026'",
            "YYYY-MM-DD",
        ),
        (
            with_config(timezon="America/Los_Angeles"),
            "'timezon'",
            "allow, deny, emergency, holidays, timezone, weekends",
        ),
        (with_config(weekends="sometimes"), "'sometimes'", "open"),
        (with_config(allow="Tue-Thu 10:00-15:00"), "'Tue-Thu 10:00-15:00'", "allow: ["),
        (with_config(deny=["Fri 12-24"]), "'Fri 12-24'", "HH:MM"),
    ],
)
def test_bad_config(config: dict[str, Any], named: str, fix: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        build_schedule(config)
    assert named in raised.value.message
    assert raised.value.fix is not None and fix in raised.value.fix


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "US/Pacific", "UTC", "Europe/Berlin", "PST8PDT"])
def test_zones_zoneinfo_knows_are_accepted(zone: str) -> None:
    assert build_schedule({"timezone": zone}).timezone == ZoneInfo(zone)


def test_extra_dates_may_be_yaml_dates_without_a_country() -> None:
    from datetime import date

    plan = build_schedule({"timezone": "UTC", "holidays": {"extra": {date(2026, 3, 18): "Company day"}}})
    assert plan.holiday_country is None
    assert evaluate(plan, utc(2026, 3, 18, 12, 0)).reason == "closed: Company day (extra holiday)"
    assert evaluate(plan, utc(2026, 3, 17, 12, 0)).open


def test_naive_instants_and_bad_freezes_are_refused() -> None:
    with pytest.raises(InvalidInput, match="no time zone"):
        evaluate(SCHEDULES["process"], datetime(2026, 3, 10, 10, 0))
    with pytest.raises(InvalidInput, match="no time zone"):
        next_opening(SCHEDULES["process"], datetime(2026, 3, 10, 10, 0))
    with pytest.raises(InvalidInput, match="no time zone"):
        Freeze(datetime(2026, 12, 1), None, "naive")
    with pytest.raises(InvalidInput, match="not after its start"):
        Freeze(utc(2026, 12, 2, 0, 0), utc(2026, 12, 1, 0, 0), "backwards")
