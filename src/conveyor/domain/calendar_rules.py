"""The deploy schedule's rules: windows, freezes, holidays and the ``schedule:`` config that builds them.

Pure: no I/O and no clock. :mod:`conveyor.domain.calendar` judges instants against a :class:`Schedule`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from conveyor.errors import InvalidInput

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAY_INDEX = {name[:3].lower(): i for i, name in enumerate(DAY_NAMES)} | {
    name.lower(): i for i, name in enumerate(DAY_NAMES)
}
_WINDOW = re.compile(r"(?P<days>[A-Za-z][A-Za-z ,\-]*?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})")
_WINDOW_FIX = (
    "write a window as DAYS HH:MM-HH:MM, e.g. 'Tue-Thu 10:00-15:00' or 'Mon,Wed 09:30-17:00': days Mon..Sun, "
    "ranges may wrap ('Fri-Mon'), the end is after the start and 24:00 means midnight"
)
CONFIG_KEYS = ("allow", "deny", "emergency", "holidays", "timezone", "weekends")
_HOLIDAY_KEYS = ("country", "extra", "subdivision")
# Abbreviations people write for a zone, and the IANA name that follows its daylight saving rules.
_ABBREVIATIONS = {
    "PST": "America/Los_Angeles", "PDT": "America/Los_Angeles", "PT": "America/Los_Angeles",
    "MST": "America/Denver", "MDT": "America/Denver", "MT": "America/Denver",
    "CST": "America/Chicago", "CDT": "America/Chicago", "CT": "America/Chicago",
    "EST": "America/New_York", "EDT": "America/New_York", "ET": "America/New_York",
    "AKST": "America/Anchorage", "AKDT": "America/Anchorage", "HST": "Pacific/Honolulu",
    "BST": "Europe/London", "WET": "Europe/Lisbon", "WEST": "Europe/Lisbon",
    "CET": "Europe/Berlin", "CEST": "Europe/Berlin", "MET": "Europe/Berlin", "MEST": "Europe/Berlin",
    "EET": "Europe/Athens", "EEST": "Europe/Athens", "MSK": "Europe/Moscow", "IST": "Asia/Kolkata",
    "JST": "Asia/Tokyo", "KST": "Asia/Seoul", "AEST": "Australia/Sydney", "AEDT": "Australia/Sydney",
    "NZST": "Pacific/Auckland", "NZDT": "Pacific/Auckland",
}  # fmt: skip
_ZONE_NAMES_THAT_LOOK_LIKE_ABBREVIATIONS = frozenset({"UTC", "GMT", "UCT", "GB", "NZ", "PRC", "ROC", "ROK"})


def minutes_text(minutes: int) -> str:
    """``600`` -> ``'10:00'``; ``1440`` -> ``'24:00'``."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Window:
    """Weekly wall-clock hours: ``days`` (0=Mon..6=Sun), minutes of the day ``[start, end)``."""

    days: frozenset[int]
    start: int
    end: int
    text: str

    def __post_init__(self) -> None:
        if not self.days or not self.days <= frozenset(range(7)):
            raise InvalidInput(f"window {self.text!r} has days {sorted(self.days)}", fix="use 0 (Mon) .. 6 (Sun)")
        if not 0 <= self.start < self.end <= 1440:
            raise InvalidInput(f"window {self.text!r} has minutes {self.start}-{self.end}", fix=_WINDOW_FIX)

    def contains(self, weekday: int, minute: int) -> bool:
        return weekday in self.days and self.start <= minute < self.end

    def describe(self, weekday: int) -> str:
        """How the window reads on one of its days: ``'Friday after 12:00'``, ``'Saturday all day'``."""
        day = DAY_NAMES[weekday]
        if self.start == 0 and self.end == 1440:
            return f"{day} all day"
        if self.end == 1440:
            return f"{day} after {minutes_text(self.start)}"
        if self.start == 0:
            return f"{day} before {minutes_text(self.end)}"
        return f"{day} {minutes_text(self.start)}-{minutes_text(self.end)}"


def _day(token: str, text: str) -> int:
    index = _DAY_INDEX.get(token.strip().lower())
    if index is None:
        raise InvalidInput(f"window {text!r}: {token.strip()!r} is not a day", fix=_WINDOW_FIX)
    return index


def _minutes(token: str, text: str, *, is_end: bool) -> int:
    hours, minutes = (int(part) for part in token.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not is_end)):
        raise InvalidInput(f"window {text!r}: {token!r} is not a time of day", fix=_WINDOW_FIX)
    return hours * 60 + minutes


def parse_window(text: str) -> Window:
    """``'Tue-Thu 10:00-15:00'`` -> ``Window({1, 2, 3}, 600, 900, ...)``; InvalidInput on anything else."""
    if not isinstance(text, str):
        raise InvalidInput(f"window {text!r} is not text", fix=_WINDOW_FIX)
    match = _WINDOW.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(f"window {text!r} is not DAYS HH:MM-HH:MM", fix=_WINDOW_FIX)
    days: set[int] = set()
    for item in match["days"].split(","):
        first, dash, last = item.partition("-")
        if not first.strip() or (dash and not last.strip()):
            raise InvalidInput(f"window {text!r}: {item.strip()!r} is not a day or a day range", fix=_WINDOW_FIX)
        begin = _day(first, text)
        finish = _day(last, text) if dash else begin
        days.update((begin + step) % 7 for step in range((finish - begin) % 7 + 1))
    start = _minutes(match["start"], text, is_end=False)
    end = _minutes(match["end"], text, is_end=True)
    if start >= end:
        raise InvalidInput(
            f"window {text!r} ends at or before it starts",
            fix="the end must be after the start; split a window across midnight in two, "
            "e.g. 'Fri 22:00-24:00' and 'Sat 00:00-02:00'",
        )
    return Window(frozenset(days), start, end, text.strip())


@dataclass(frozen=True)
class Freeze:
    """No deploys from ``start`` until ``end`` (exclusive); ``end=None`` holds until lifted."""

    start: datetime
    end: datetime | None
    reason: str

    def __post_init__(self) -> None:
        for name, value in (("start", self.start), ("end", self.end)):
            if value is not None and value.utcoffset() is None:
                raise InvalidInput(f"freeze {name} {value.isoformat()} has no time zone", fix="give an offset or Z")
        if self.end is not None and self.end <= self.start:
            raise InvalidInput(
                f"freeze ends at {self.end.isoformat()}, not after its start {self.start.isoformat()}",
                fix="--until must be later than --from",
            )

    def covers(self, instant: datetime) -> bool:
        return self.start <= instant and (self.end is None or instant < self.end)


@dataclass(frozen=True)
class Schedule:
    """When deploys may start, judged on the wall clock of ``timezone``."""

    timezone: ZoneInfo
    allow: tuple[Window, ...] = ()
    deny: tuple[Window, ...] = ()
    weekends: bool = True
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    extra_holidays: Mapping[date, str] = field(default_factory=dict, hash=False)
    freezes: tuple[Freeze, ...] = ()

    def holiday(self, day: date) -> str | None:
        """``'Thanksgiving Day (US holiday)'`` when ``day`` is a holiday here, else None."""
        extra = self.extra_holidays.get(day)
        if extra is not None:
            return f"{extra} (extra holiday)"
        if self.holiday_country is None:
            return None
        name = _holidays_of_year(self.holiday_country, self.holiday_subdivision, day.year).get(day)
        if name is None:
            return None
        where = self.holiday_country + (f"-{self.holiday_subdivision}" if self.holiday_subdivision else "")
        return f"{name} ({where} holiday)"


def _holiday_calendar(country: str, subdivision: str | None, years: int | None = None) -> Any:
    """The ``holidays`` calendar, named in English where it can be (never from the process locale)."""
    entity = holidays.country_holidays(country, subdiv=subdivision, observed=True)
    supported = tuple(entity.supported_languages)
    language = next((lang for lang in ("en_US", "en", "en_GB") if lang in supported), entity.default_language)
    return holidays.country_holidays(country, subdiv=subdivision, years=years, observed=True, language=language)


@lru_cache(maxsize=256)
def _holidays_of_year(country: str, subdivision: str | None, year: int) -> dict[date, str]:
    return dict(_holiday_calendar(country, subdivision, year).items())


def parse_timezone(name: Any) -> ZoneInfo:
    """An IANA zone; bare abbreviations (PST, EST) are refused with the zone to use instead."""
    fix = "use an IANA name such as America/Los_Angeles (it follows PST and PDT by itself)"
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"schedule.timezone {name!r} is not a time zone name", fix=fix)
    name = name.strip()
    if name.upper() in _ABBREVIATIONS:
        zone = _ABBREVIATIONS[name.upper()]
        raise InvalidInput(
            f"schedule.timezone {name!r} is an abbreviation, not an IANA time zone",
            fix=f"use an IANA name such as {zone} (it follows standard and daylight time by itself)",
        )
    looks_abbreviated = re.fullmatch(r"[A-Z]{2,5}", name) and name not in _ZONE_NAMES_THAT_LOOK_LIKE_ABBREVIATIONS
    if looks_abbreviated or name == "localtime":
        raise InvalidInput(f"schedule.timezone {name!r} is not an IANA time zone", fix=fix)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"schedule.timezone {name!r} is not a known time zone", fix=fix) from None


def _windows(config: Mapping[str, Any], key: str) -> tuple[Window, ...]:
    value = config.get(key)
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInput(
            f"schedule.{key} must be a list of windows, got {value!r}", fix=f'write {key}: ["Tue-Thu 10:00-15:00"]'
        )
    return tuple(parse_window(item) for item in value)


def _extra_dates(value: Any) -> dict[date, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(
            f"schedule.holidays.extra must map dates to names, got {value!r}",
            fix='write extra: {"2026-12-24": "Christmas Eve"}',
        )
    extra: dict[date, str] = {}
    for key, name in value.items():
        day: date | None = key if isinstance(key, date) and not isinstance(key, datetime) else None
        if isinstance(key, str):
            try:
                day = date.fromisoformat(key.strip())
            except ValueError:
                day = None
        if day is None:
            raise InvalidInput(f"schedule.holidays.extra: {key!r} is not a date", fix="write dates as YYYY-MM-DD")
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"schedule.holidays.extra: {key} needs a name, got {name!r}", fix="name the day")
        extra[day] = name.strip()
    return extra


def _holidays_config(value: Any) -> tuple[str | None, str | None, dict[date, str]]:
    if value is None:
        return None, None, {}
    if isinstance(value, str):
        value = {"country": value}
    if not isinstance(value, Mapping):
        raise InvalidInput(
            f"schedule.holidays must be a country code or a mapping, got {value!r}",
            fix="write holidays: US, or holidays: {country: DE, subdivision: BY}",
        )
    unknown = sorted(str(key) for key in value if key not in _HOLIDAY_KEYS)
    if unknown:
        raise InvalidInput(
            f"unknown key {unknown[0]!r} in schedule.holidays", fix=f"allowed: {', '.join(_HOLIDAY_KEYS)}"
        )
    country, subdivision = value.get("country"), value.get("subdivision")
    if subdivision is not None and country is None:
        raise InvalidInput(f"schedule.holidays.subdivision {subdivision!r} has no country", fix="add country: XX")
    for key, item in (("country", country), ("subdivision", subdivision)):
        if item is not None and (not isinstance(item, str) or not item.strip()):
            raise InvalidInput(f"schedule.holidays.{key} {item!r} is not a code", fix="write e.g. US, GB or DE")
    if isinstance(country, str):
        country = country.strip().upper()
        subdivision = subdivision.strip() if isinstance(subdivision, str) else None
        supported = holidays.list_supported_countries()
        if country not in supported:
            raise InvalidInput(
                f"schedule.holidays: unknown country {country!r}",
                fix="use an ISO 3166-1 alpha-2 code the holidays package knows, e.g. US, GB, DE, FR, CA",
            )
        if subdivision is not None:
            try:
                _holiday_calendar(country, subdivision)
            except NotImplementedError:
                known = ", ".join(supported[country]) or "none"
                raise InvalidInput(
                    f"schedule.holidays: {country} has no subdivision {subdivision!r}", fix=f"use one of: {known}"
                ) from None
    return country, subdivision, _extra_dates(value.get("extra"))


def build_schedule(config: Mapping[str, Any], freezes: Sequence[Freeze] = ()) -> Schedule:
    """The ``schedule:`` mapping of conveyor.yml, plus the server's freezes, as a :class:`Schedule`."""
    if not isinstance(config, Mapping):
        raise InvalidInput(f"schedule must be a mapping, got {config!r}", fix="write schedule: {timezone: ...}")
    unknown = sorted(str(key) for key in config if key not in CONFIG_KEYS)
    if unknown:
        raise InvalidInput(f"unknown key {unknown[0]!r} in schedule", fix=f"allowed: {', '.join(CONFIG_KEYS)}")
    if "timezone" not in config:
        raise InvalidInput("schedule has no timezone", fix="add timezone: America/Los_Angeles (any IANA name)")
    weekends = config.get("weekends", "closed")
    if weekends not in ("closed", "open"):
        raise InvalidInput(f"schedule.weekends {weekends!r} is not closed or open", fix="write weekends: open")
    country, subdivision, extra = _holidays_config(config.get("holidays"))
    return Schedule(
        timezone=parse_timezone(config["timezone"]),
        allow=_windows(config, "allow"),
        deny=_windows(config, "deny"),
        weekends=weekends == "closed",
        holiday_country=country,
        holiday_subdivision=subdivision,
        extra_holidays=extra,
        freezes=tuple(freezes),
    )
