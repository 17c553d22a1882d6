"""The deploy schedule: is an instant open for deploys, and if not, why and when does it open?

Pure: every function takes the instant it judges; nothing reads the clock. The schedule works on whole
minutes of the wall clock in its zone. An instant is judged by the minute that contains it; a UTC minute
is open when none of these closes it, checked in this order (the first one found is the reason):
a freeze, a holiday (the observed date), a weekend day (when weekends are closed), a deny window, and
being outside every allow window (when there are allow windows). Window ends are exclusive.

Searches step from one candidate boundary to the next (window edges, midnights, daylight saving
transitions, freeze edges) instead of minute by minute; a day closed as a whole is skipped at once.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from conveyor.domain.calendar_rules import (
    DAY_NAMES,
    Freeze,
    Schedule,
    Window,
    build_schedule,
    parse_timezone,
    parse_window,
)
from conveyor.errors import InvalidInput

__all__ = [
    "Freeze",
    "Schedule",
    "Span",
    "Verdict",
    "Window",
    "build_schedule",
    "closes_at",
    "evaluate",
    "next_opening",
    "parse_timezone",
    "parse_window",
    "spans",
]

MINUTE = timedelta(minutes=1)
HORIZON_DAYS = 400


@dataclass(frozen=True)
class Verdict:
    """The schedule's answer for one instant; ``next_open`` when closed, ``closes_at`` when open."""

    open: bool
    reason: str
    local: datetime
    next_open: datetime | None
    closes_at: datetime | None


@dataclass(frozen=True)
class Span:
    """``[start, end)`` with one verdict and one reason throughout."""

    start: datetime
    end: datetime
    open: bool
    reason: str


def _utc(at: datetime, what: str = "at") -> datetime:
    if not isinstance(at, datetime) or at.utcoffset() is None:
        raise InvalidInput(
            f"{what} {at!r} has no time zone", fix="pass an aware datetime, e.g. 2026-03-10T18:00:00Z or with +00:00"
        )
    return at.astimezone(UTC)


def _floor(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _ceil(at: datetime) -> datetime:
    floor = _floor(at)
    return floor if floor == at else floor + MINUTE


class _Judge:
    """Judges UTC minutes of one schedule, remembering each local day's boundaries while it searches."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.zone = schedule.timezone
        self.freeze_edges = sorted(
            {_ceil(f.start.astimezone(UTC)) for f in schedule.freezes}
            | {_ceil(f.end.astimezone(UTC)) for f in schedule.freezes if f.end is not None}
        )
        self._days: dict[date, tuple[datetime, datetime, list[datetime]]] = {}

    def closure(self, minute: datetime) -> tuple[str, str] | None:
        """None when open, else (kind, reason) with kind one of freeze, day, window."""
        schedule = self.schedule
        for freeze in schedule.freezes:
            if freeze.covers(minute):
                return "freeze", _freeze_reason(freeze, schedule)
        local = minute.astimezone(self.zone)
        holiday = schedule.holiday(local.date())
        if holiday is not None:
            return "day", f"closed: {holiday}"
        weekday = local.weekday()
        if schedule.weekends and weekday >= 5:
            return "day", f"closed: weekend ({DAY_NAMES[weekday]})"
        wall = local.hour * 60 + local.minute
        zone = self.zone.key
        for window in schedule.deny:
            if window.contains(weekday, wall):
                return "window", f"closed: {window.describe(weekday)} {zone} (deny {window.text})"
        if schedule.allow and not any(window.contains(weekday, wall) for window in schedule.allow):
            return "window", f"closed: outside {', '.join(w.text for w in schedule.allow)} {zone}"
        return None

    def open_reason(self, minute: datetime) -> str:
        local = minute.astimezone(self.zone)
        wall = local.hour * 60 + local.minute
        for window in self.schedule.allow:
            if window.contains(local.weekday(), wall):
                return f"open: inside {window.text} ({self.zone.key})"
        return f"open: no allow windows, and no rule closes this time ({self.zone.key})"

    def reason(self, minute: datetime) -> tuple[bool, str]:
        closed = self.closure(minute)
        return (False, closed[1]) if closed else (True, self.open_reason(minute))

    def _instant(self, day: date, minutes: int, fold: int) -> datetime:
        wall = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=self.zone).replace(fold=fold)
        return _ceil(wall.astimezone(UTC))

    def day(self, day: date) -> tuple[datetime, datetime, list[datetime]]:
        """The UTC bounds ``[first, next day's first)`` of a local date and the minutes inside where rules may flip."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        first, after = self._instant(day, 0, 0), self._instant(day + timedelta(days=1), 0, 0)
        weekday = day.weekday()
        walls = {0}
        for window in self.schedule.allow + self.schedule.deny:
            if weekday in window.days:
                walls.update((window.start, window.end))
        edges = {self._instant(day, wall, fold) for wall in walls if wall < 1440 for fold in (0, 1)}
        last = after - MINUTE
        if first < last and first.astimezone(self.zone).utcoffset() != last.astimezone(self.zone).utcoffset():
            edges.add(self._transition(first, last))
        result = (first, after, sorted(edge for edge in edges if first <= edge < after))
        self._days[day] = result
        return result

    def _transition(self, low: datetime, high: datetime) -> datetime:
        """The first UTC minute in ``(low, high]`` whose offset differs from ``low``'s."""
        before = low.astimezone(self.zone).utcoffset()
        steps = int((high - low) / MINUTE)
        lo, hi = 0, steps  # offset at lo is `before`, at hi it is not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if (low + mid * MINUTE).astimezone(self.zone).utcoffset() == before:
                lo = mid
            else:
                hi = mid
        return low + hi * MINUTE

    def next_boundary(self, minute: datetime, *, skip_day: bool = False) -> datetime:
        """The next minute after ``minute`` where a rule may change; with ``skip_day``, the next local midnight."""
        _, after, edges = self.day(minute.astimezone(self.zone).date())
        candidates = [after]
        if not skip_day:
            index = bisect.bisect_right(edges, minute)
            if index < len(edges):
                candidates.append(edges[index])
        index = bisect.bisect_right(self.freeze_edges, minute)
        if index < len(self.freeze_edges):
            candidates.append(self.freeze_edges[index])
        return max(min(candidates), minute + MINUTE)

    def first_closed(self, start: datetime, limit: datetime) -> datetime | None:
        return self.first(start, limit, lambda minute: self.closure(minute) is not None)

    def first(self, start: datetime, limit: datetime, wanted: Callable[[datetime], bool]) -> datetime | None:
        """The first boundary minute from ``start`` (inclusive) up to ``limit`` where ``wanted`` holds."""
        minute = start
        while minute <= limit:
            if wanted(minute):
                return minute
            minute = self.next_boundary(minute)
        return None


def _freeze_reason(freeze: Freeze, schedule: Schedule) -> str:
    until = "lifted" if freeze.end is None else freeze.end.astimezone(schedule.timezone).strftime("%Y-%m-%d %H:%M %Z")
    return f"closed: freeze until {until}" + (f": {freeze.reason}" if freeze.reason else "")


def _next_opening(judge: _Judge, start: datetime, limit: datetime) -> datetime | None:
    minute = start
    while minute <= limit:
        closed = judge.closure(minute)
        if closed is None:
            return minute
        kind = closed[0]
        if kind == "freeze":
            ends = [f.end for f in judge.schedule.freezes if f.covers(minute)]
            if None in ends:
                return None  # frozen until lifted
            minute = max(_ceil(max(end.astimezone(UTC) for end in ends if end is not None)), minute + MINUTE)
        else:
            minute = judge.next_boundary(minute, skip_day=kind == "day")
    return None


def next_opening(schedule: Schedule, at: datetime, horizon_days: int = HORIZON_DAYS) -> datetime | None:
    """The first open minute at or after ``at`` (rounded up to the minute), in the schedule's zone.

    None when nothing opens within ``horizon_days`` of ``at``, or a freeze without an end covers it.
    """
    start = _ceil(_utc(at))
    found = _next_opening(_Judge(schedule), start, _utc(at) + timedelta(days=horizon_days))
    return found.astimezone(schedule.timezone) if found else None


def closes_at(schedule: Schedule, at: datetime, horizon_days: int = HORIZON_DAYS) -> datetime | None:
    """The first closed minute at or after the minute containing ``at`` (so, while open, the next closing).

    None when nothing closes within ``horizon_days``.
    """
    start = _floor(_utc(at))
    found = _Judge(schedule).first_closed(start, start + timedelta(days=horizon_days))
    return found.astimezone(schedule.timezone) if found else None


def evaluate(schedule: Schedule, at: datetime) -> Verdict:
    """Judge ``at`` (aware) by the wall-clock minute it falls in; say why, and when that changes."""
    instant = _utc(at)
    minute = _floor(instant)
    judge = _Judge(schedule)
    is_open, reason = judge.reason(minute)
    local = instant.astimezone(schedule.timezone)
    if is_open:
        limit = minute + timedelta(days=HORIZON_DAYS)
        closing = judge.first_closed(minute, limit)
        return Verdict(True, reason, local, None, closing.astimezone(schedule.timezone) if closing else None)
    opening = _next_opening(judge, _ceil(instant), instant + timedelta(days=HORIZON_DAYS))
    return Verdict(False, reason, local, opening.astimezone(schedule.timezone) if opening else None, None)


def spans(schedule: Schedule, start: datetime, days: int) -> list[Span]:
    """Consecutive spans covering ``[start, start + days)``; a new span begins where the verdict or reason changes.

    ``days`` counts calendar days in the schedule's zone (the same wall time ``days`` later, so a week
    holding a daylight saving change is 167 or 169 hours). Times are in the schedule's zone; the first
    span starts at ``start`` itself and the last one ends at the end.
    """
    if days < 0:
        raise InvalidInput(f"days {days} is negative", fix="ask for 0 or more days")
    judge = _Judge(schedule)
    begin = _utc(start, "start")
    end = (begin.astimezone(schedule.timezone) + timedelta(days=days)).astimezone(UTC)  # wall-clock days
    result: list[Span] = []
    cursor = begin
    while cursor < end:
        minute = _floor(cursor)
        state = judge.reason(minute)

        def differs(other: datetime, state: tuple[bool, str] = state) -> bool:
            return judge.reason(other) != state

        change = judge.first(judge.next_boundary(minute), end, differs)
        stop = min(change, end) if change else end
        zone = schedule.timezone
        result.append(Span(cursor.astimezone(zone), stop.astimezone(zone), state[0], state[1]))
        cursor = stop
    return result
