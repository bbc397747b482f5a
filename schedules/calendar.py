"""Working-day calendar: decides whether the morning stand-up (晨会) and the daily digest fire on a day, and
when a help request nobody took has waited long enough in *working* time to be escalated.

Two kinds of calendar, chosen per team by name through :func:`calendar_for`:

``"cn"``
    Mainland China's statutory holidays as published each year by the State Council, *including* the
    make-up working days (调休): to stitch a holiday into a long break, a Saturday or Sunday next to it becomes
    an ordinary working day. A plain Mon–Fri rule would skip the stand-up on those weekends while the whole
    team is at their desks, and fire it on the Monday of Spring Festival. The data comes from the
    ``chinesecalendar`` package.
``"weekdays"``
    Plain Monday to Friday, for teams that do not follow the mainland holiday schedule.

The holiday schedule for a year is published only a few weeks before it starts (usually in November), so
``chinesecalendar`` knows a fixed range of years and raises for any other. A bot must not stop working every
January until someone upgrades a package: for a year the data does not cover, the ``"cn"`` calendar falls
back to Mon–Fri and logs one WARNING per year per process, naming the remedy.

An organisation's admins can enter their own holidays and make-up days (``设置 假期``, ``设置 调休``,
``salesbot calendar import``); ``calendar_for(kind, overrides)`` puts them in front of the kind's rule
(:class:`OverriddenCalendar`), for any year — so the admins' entries make a year the package lacks right.
A ``"weekdays"`` team takes the organisation's holidays (a company holiday is a day off for everyone) but
not its make-up days: a 调休 Saturday pays back a bridge day of the statutory schedule, which a Mon–Fri
team never took.

Dates given to these methods are dates *in the organisation's time zone*; :func:`local_now` and
:func:`at_local` convert between UTC and that zone.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar

__all__ = [
    "CALENDAR_KINDS",
    "HOLIDAY",
    "WORKDAY",
    "ChinaHolidayCalendar",
    "OverriddenCalendar",
    "WeekdayCalendar",
    "WorkCalendar",
    "at_local",
    "calendar_for",
    "library_covers",
    "local_now",
]

logger = logging.getLogger("salesbot.calendar")

_ONE_DAY = timedelta(days=1)


def _as_date(d: date) -> date:
    """Reject a ``datetime`` where a calendar date is meant.

    ``datetime`` is a subclass of ``date``, so it would slip through silently; but a UTC timestamp's date is
    the previous day in Beijing from 16:00 UTC on, which would skip or double a stand-up. The caller must pick
    the org-local date explicitly (``local_now(now, tz).date()``).
    """
    if isinstance(d, datetime):
        raise TypeError(
            f"expected a date in the organisation's zone, got the datetime {d!r}; pass .date() of a local datetime"
        )
    return d


class WorkCalendar(ABC):
    """Which days are working days, and arithmetic in working days and working hours.

    Subclasses decide only :meth:`is_working_day`; everything else is derived from it.
    """

    kind: str

    @abstractmethod
    def is_working_day(self, d: date) -> bool:
        """True if ``d`` (a date in the org's zone) is a day people work."""

    def next_working_day(self, d: date) -> date:
        """The first working day strictly after ``d``."""
        day = _as_date(d) + _ONE_DAY
        while not self.is_working_day(day):
            day += _ONE_DAY
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in the half-open range ``[start, end)``: ``start`` counts, ``end`` does not.

        Half-open so that ranges add up (``a→b`` plus ``b→c`` equals ``a→c``) and ``start == end`` is 0 — the
        convention of ``numpy.busday_count``. Likewise, when ``end`` is before ``start`` the count of
        ``[end, start)`` is returned negated.
        """
        start, end = _as_date(start), _as_date(end)
        if end < start:
            return -self.working_days_between(end, start)
        count = 0
        day = start
        while day < end:
            count += self.is_working_day(day)
            day += _ONE_DAY
        return count

    def add_working_hours(
        self,
        start: datetime,
        hours: float,
        day_start: time = time(9),
        day_end: time = time(18),
    ) -> datetime:
        """The moment ``hours`` of office time after ``start``.

        Only time inside ``[day_start, day_end)`` on working days counts: a help request posted on Friday at
        16:00 with a 4-hour escalation window is due on Monday at 11:00, not on Friday night. A start outside
        office hours begins counting at the next opening. When the hours run out exactly at closing time,
        the result is that closing time (not the next morning). ``hours == 0`` returns ``start`` unchanged.

        ``start`` must be timezone-aware and expressed in the org's zone: office hours and the working day
        are read in ``start.tzinfo``, and the result is in the same zone. Durations are measured in real
        elapsed time (through UTC), so a daylight-saving change inside office hours is counted correctly.
        """
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be a timezone-aware datetime in the organisation's zone")
        if not math.isfinite(hours) or hours < 0:
            raise ValueError(f"hours must be a finite number >= 0, got {hours!r}")
        if day_start >= day_end:
            raise ValueError(f"day_start ({day_start}) must be before day_end ({day_end})")
        if hours == 0:
            return start

        zone = start.tzinfo
        remaining = timedelta(hours=hours)
        cursor = start
        day = start.date()
        while True:
            if self.is_working_day(day):
                opens = datetime.combine(day, day_start, tzinfo=zone)
                closes = datetime.combine(day, day_end, tzinfo=zone)
                begin = max(cursor, opens)
                if begin < closes:
                    # Aware datetimes sharing a tzinfo subtract as wall-clock times; go through UTC for
                    # real elapsed time.
                    available = closes.astimezone(UTC) - begin.astimezone(UTC)
                    if remaining <= available:
                        return (begin.astimezone(UTC) + remaining).astimezone(zone)
                    remaining -= available
            day += _ONE_DAY
            cursor = datetime.combine(day, time.min, tzinfo=zone)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class WeekdayCalendar(WorkCalendar):
    """Monday to Friday are working days; public holidays are ignored."""

    kind = "weekdays"

    def is_working_day(self, d: date) -> bool:
        return _as_date(d).weekday() < 5


_fallback_years_warned: set[int] = set()
_fallback_lock = threading.Lock()


def _warn_fallback_once(year: int) -> None:
    """Log that ``year`` is not in chinesecalendar's data — once per year per process, not once per call."""
    with _fallback_lock:
        if year in _fallback_years_warned:
            return
        _fallback_years_warned.add(year)
    logger.warning(
        "chinesecalendar %s has no holiday data for %d; treating Monday-Friday as working days for that year "
        "(holidays and make-up working days (调休) are ignored, except those an organisation's admins entered). "
        "Upgrade it (pip install -U chinesecalendar), or enter the year's days: 设置 假期 … in chat or "
        "salesbot calendar import <file>",
        chinese_calendar.__version__,
        year,
    )


class ChinaHolidayCalendar(WorkCalendar):
    """Mainland China's statutory holidays and make-up working days (调休), via ``chinesecalendar``.

    A weekend day that the State Council turned into a working day (e.g. Saturday 2026-02-14 before Spring
    Festival) is a working day; a weekday inside a holiday block is not. For a year the package has no data
    for, Mon–Fri is used and a warning is logged once for that year (see the module docstring).
    """

    kind = "cn"

    def is_working_day(self, d: date) -> bool:
        d = _as_date(d)
        known = _china_workday(d)
        if known is None:
            _warn_fallback_once(d.year)
            return d.weekday() < 5
        return known


@functools.lru_cache(maxsize=4096)
def _china_workday(d: date) -> bool | None:
    """The package's answer, or None for a year outside its data. Memoised: the package scans its whole
    holiday table on every call (to check the year is covered), and the minute tick asks about the same
    few days once per team and job — with hundreds of teams that was most of the tick."""
    try:
        return bool(chinese_calendar.is_workday(d))
    except NotImplementedError:
        # The package signals "year outside my data" with NotImplementedError; its message wording is not
        # an API, so only the type is relied upon. We pass a plain date, so no other cause applies.
        return None


def library_covers(year: int) -> bool:
    """Whether ``chinesecalendar`` has the holiday schedule of ``year`` (it covers whole years)."""
    return _china_workday(date(year, 6, 30)) is not None


HOLIDAY = "holiday"
WORKDAY = "workday"


class OverriddenCalendar(WorkCalendar):
    """A calendar with an organisation's own entries in front: ``overrides`` maps a day to ``"holiday"``
    or ``"workday"`` (调休); every other day is the base calendar's. On a ``"weekdays"`` base only the
    holidays count (see the module docstring)."""

    def __init__(self, base: WorkCalendar, overrides: Mapping[date, str]) -> None:
        self.base = base
        self.kind = base.kind
        if base.kind == WeekdayCalendar.kind:
            overrides = {d: k for d, k in overrides.items() if k == HOLIDAY}
        self.overrides = overrides

    def is_working_day(self, d: date) -> bool:
        found = self.overrides.get(_as_date(d))
        if found is None:
            return self.base.is_working_day(d)
        return found == WORKDAY

    def __repr__(self) -> str:
        return f"OverriddenCalendar({self.base!r}, {len(self.overrides)} days)"


_CALENDARS: dict[str, WorkCalendar] = {
    ChinaHolidayCalendar.kind: ChinaHolidayCalendar(),
    WeekdayCalendar.kind: WeekdayCalendar(),
}

CALENDAR_KINDS: tuple[str, ...] = tuple(_CALENDARS)
"""The names :func:`calendar_for` accepts, for validating settings."""


def calendar_for(kind: str, overrides: Mapping[date, str] | None = None) -> WorkCalendar:
    """The calendar named ``kind`` (``"cn"`` or ``"weekdays"``); ``ValueError`` for any other name.

    With ``overrides`` (an organisation's own days: day → ``"holiday"`` / ``"workday"``) they take
    precedence; without, calendars hold no state, so one shared instance per kind is returned.
    """
    try:
        base = _CALENDARS[kind]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown work calendar {kind!r}; expected one of: {', '.join(CALENDAR_KINDS)}"
        ) from None
    return OverriddenCalendar(base, overrides) if overrides else base


def _zone(tz_name: str) -> ZoneInfo:
    """``ZoneInfo(tz_name)``, with every way a bad name can fail turned into one clear ``ValueError``."""
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        # ZoneInfoNotFoundError for a missing key, ValueError for a malformed one ("", "../x"),
        # IsADirectoryError for an area such as "Asia".
        raise ValueError(
            f"unknown time zone {tz_name!r}; use an IANA zone name such as 'Asia/Shanghai' (case-sensitive)"
        ) from None


def local_now(now_utc: datetime, tz_name: str) -> datetime:
    """``now_utc`` seen on the wall clock of ``tz_name`` (an IANA name such as ``"Asia/Shanghai"``).

    Handlers and jobs receive ``now`` in UTC; which *day* it is — and so whether the stand-up fires — depends
    on the org's zone. A naive datetime is rejected rather than guessed to be UTC or server-local time.
    """
    if now_utc.tzinfo is None or now_utc.utcoffset() is None:
        raise ValueError("now_utc must be timezone-aware (e.g. datetime.now(UTC))")
    return now_utc.astimezone(_zone(tz_name))


def at_local(d: date, t: time, tz_name: str) -> datetime:
    """The aware datetime for wall-clock time ``t`` on date ``d`` in ``tz_name``.

    ``t`` is read as a wall-clock time; any tzinfo on it is replaced. In zones with daylight saving, a time
    that does not exist or occurs twice on ``d`` resolves by ``fold=0`` (PEP 495): the offset in force before
    the change.
    """
    return datetime.combine(_as_date(d), t, tzinfo=_zone(tz_name))
