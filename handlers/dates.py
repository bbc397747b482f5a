"""Dates as reps type them in chat (明天, 周五, 下周一, 12-05, 2026年12月5日) and as the bot shows them back.

``today`` is always passed in rather than read from the clock: "today" depends on the team's time
zone, which only the caller knows, and tests need to pin it.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta
from typing import Final

__all__ = ["DateError", "format_date", "parse_date", "weekday_name"]

_EXAMPLE: Final = "示例：明天、周五、下周一、12-05、2026-12-05"

_WEEKDAY_NAMES: Final = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")

_RELATIVE_DAYS: Final[dict[str, int]] = {
    "前天": -2,
    "昨天": -1,
    "昨日": -1,
    "今天": 0,
    "今日": 0,
    "明天": 1,
    "明日": 1,
    "后天": 2,
    "大后天": 3,
}

# 日 and 天 both mean Sunday (星期日, 礼拜天); digits appear when people type fast (周5).
_WEEKDAY_INDEX: Final[dict[str, int]] = {
    **{ch: i for i, ch in enumerate("一二三四五六")},
    "日": 6,
    "天": 6,
    **{str(i + 1): i for i in range(7)},
}

_CN_DIGITS: Final[dict[str, int]] = {
    "零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip

#: "N天后" beyond ten years is a typo, and an unbounded N would overflow ``date``.
_MAX_DAYS_AHEAD: Final = 3650

#: A month-day this far in the past means next year: in late December, 「01-05」 is next January.
_ROLLOVER_GRACE: Final = timedelta(days=30)

# Input is NFKC-folded (full-width digits and punctuation become ASCII) and stripped of whitespace
# before matching; re.ASCII keeps \d to 0-9 so other scripts' digits are not half-accepted.
_DAYS_LATER_RE: Final = re.compile(r"(?P<n>\d+|[零一二两三四五六七八九十]+)天(?:以后|之后|后)", re.ASCII)
_WEEKDAY_RE: Final = re.compile(
    r"(?P<week>本|这个?|上个?|下下个?|下个?)?(?:周|星期|礼拜)(?P<day>[一二三四五六日天1-7])", re.ASCII
)
_FULL_DATE_RE: Final = re.compile(
    r"(?P<y>\d{4})[-/.年](?P<m>\d{1,2})[-/.月](?P<d>\d{1,2})[日号]?|(?P<y8>\d{4})(?P<m8>\d{2})(?P<d8>\d{2})",
    re.ASCII,
)
_MONTH_DAY_RE: Final = re.compile(r"(?P<m>\d{1,2})[-/.月](?P<d>\d{1,2})[日号]?", re.ASCII)


class DateError(ValueError):
    """A date the bot could not read; the message is Chinese and shows the accepted forms."""


def parse_date(text: str, today: date) -> date:
    """Read a date the way reps write it, relative to ``today``.

    Past dates (昨天, 本周一 on a Friday) are allowed: reps log visits after the fact. A bare weekday
    (周五) means the next one on or after today, because follow-ups are planned forwards, while 本周五
    means this ISO week's Friday even if it has passed, because that is what 本 says. 上周一 is
    accepted for the same after-the-fact logging.
    """
    cleaned = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))
    if not cleaned:
        raise DateError(f"请写上日期。{_EXAMPLE}")

    if cleaned in _RELATIVE_DAYS:
        return _shift(today, _RELATIVE_DAYS[cleaned], text)

    if match := _DAYS_LATER_RE.fullmatch(cleaned):
        days = _read_count(match["n"])
        if days is None:
            raise _not_understood(text)
        return _shift(today, days, text)

    if match := _WEEKDAY_RE.fullmatch(cleaned):
        return _weekday(today, match["week"] or "", _WEEKDAY_INDEX[match["day"]])

    if match := _FULL_DATE_RE.fullmatch(cleaned):
        year, month, day = (
            (match["y"], match["m"], match["d"]) if match["y"] else (match["y8"], match["m8"], match["d8"])
        )
        return _calendar_date(int(year), int(month), int(day), text)

    if match := _MONTH_DAY_RE.fullmatch(cleaned):
        return _month_day(int(match["m"]), int(match["d"]), today, text)

    raise _not_understood(text)


def format_date(d: date, today: date) -> str:
    """Show a date the way a colleague would say it in chat.

    Near days get words (今天/明天/昨天) because that is what people scan for in a to-do list; other
    days carry their weekday, which matters more for planning than the date, and the year only when
    it is not this year.
    """
    offset = (d - today).days
    if offset == 0:
        return "今天"
    if offset == 1:
        return "明天"
    if offset == -1:
        return "昨天"
    shown = f"{d:%m-%d}" if d.year == today.year else f"{d:%Y-%m-%d}"
    return f"{shown} {weekday_name(d)}"


def weekday_name(d: date) -> str:
    """「周一」…「周日」 — the short form used in chat, rather than 星期一 or English names."""
    return _WEEKDAY_NAMES[d.weekday()]


def _weekday(today: date, week: str, weekday: int) -> date:
    if not week:
        return today + timedelta(days=(weekday - today.weekday()) % 7)
    monday = today - timedelta(days=today.weekday())
    weeks_ahead = {"下下": 2, "下": 1, "上": -1}.get(week.rstrip("个"), 0)
    return monday + timedelta(weeks=weeks_ahead, days=weekday)


def _month_day(month: int, day: int, today: date, text: str) -> date:
    """Pick the year for a month-day: this year, unless that is over a month ago."""
    this_year = _try_date(today.year, month, day)
    if this_year is not None and this_year >= today - _ROLLOVER_GRACE:
        return this_year
    if this_year is None:
        # Only 02-29 can be missing this year yet exist next year, and only if it would have rolled.
        leap_day_rolls = month == 2 and day == 29 and date(today.year, 2, 28) < today - _ROLLOVER_GRACE
        if not leap_day_rolls:
            raise _no_such_day(text)
    next_year = _try_date(today.year + 1, month, day)
    if next_year is None:
        raise _no_such_day(text)
    return next_year


def _try_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _calendar_date(year: int, month: int, day: int, text: str) -> date:
    found = _try_date(year, month, day)
    if found is None:
        raise _no_such_day(text)
    return found


def _shift(today: date, days: int, text: str) -> date:
    if days > _MAX_DAYS_AHEAD:
        raise DateError(f"日期太远了：「{_echo(text)}」。{_EXAMPLE}")
    try:
        return today + timedelta(days=days)
    except OverflowError:
        raise DateError(f"日期太远了：「{_echo(text)}」。{_EXAMPLE}") from None


def _read_count(text: str) -> int | None:
    """0–99 in digits or Chinese numerals (三, 十, 十五, 二十, 两); None when it is not a number."""
    if text.isdigit():
        return int(text)
    if len(text) == 1 and text in _CN_DIGITS:
        return _CN_DIGITS[text]
    tens, sep, ones = text.partition("十")
    if not sep or len(tens) > 1 or len(ones) > 1:
        return None
    if (tens and tens not in _CN_DIGITS) or (ones and ones not in _CN_DIGITS) or "零" in (tens, ones):
        return None
    return _CN_DIGITS.get(tens, 1) * 10 + _CN_DIGITS.get(ones, 0)


def _not_understood(text: str) -> DateError:
    return DateError(f"日期看不懂：「{_echo(text)}」。{_EXAMPLE}")


def _no_such_day(text: str) -> DateError:
    return DateError(f"没有这一天：「{_echo(text)}」。{_EXAMPLE}")


def _echo(text: str) -> str:
    """The user's input quoted back, cut short so a pasted paragraph does not flood the group chat."""
    text = text.strip()
    return text if len(text) <= 20 else text[:20] + "…"
