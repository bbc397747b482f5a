"""Report periods as managers type them (本周, 上月, 本季, 2027, 2027Q1, 2027年3月, 3月, 2027W05).

One pure module — no clock, no database — so 目标, 看板, the reports and the charts read a period the same
way and agree on its days. A period is a half-open range of local dates `[start, end)`; the caller turns it
into datetimes at the organisation's midnight (`storage.goals.local_bounds`). Each period has a storage key
("2027", "2027Q1", "2027-03", "2027-W05") that sorts and round-trips through `period_from_key`.

Anything shaped like a period but impossible (`2027Q9`, `13月`, `2027-00`, `9999-12`) is a `UserError` with
an example, never an exception the router would turn into the internal-error apology.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, Literal

from handlers.commands import UserError

__all__ = [
    "MAX_YEAR",
    "MIN_YEAR",
    "PERIOD_EXAMPLE",
    "Period",
    "PeriodKind",
    "current",
    "is_bare_year",
    "is_plausible_year",
    "looks_like_period",
    "month_of",
    "parse_period",
    "period_from_key",
    "quarter_of",
    "week_of",
    "year_of",
]

PeriodKind = Literal["year", "quarter", "month", "week"]

#: Years outside this range are typos (9999-12, 0202) — refused rather than looked up or overflowed.
MIN_YEAR: Final = 2000
MAX_YEAR: Final = 2100

PERIOD_EXAMPLE: Final = "看板 本月、本周、本季、2027、2027Q1、2027-03、3月"
_RANGE_TEXT: Final = f"{MIN_YEAR}–{MAX_YEAR}"

_CN_NUM: Final[dict[str, int]] = {ch: i for i, ch in enumerate("一二三四五六七八九", 1)}

# Relative words: (kind, steps from the current period).
_RELATIVE: Final[dict[str, tuple[PeriodKind, int]]] = {
    **{w: ("week", 0) for w in ("本周", "这周", "这个星期", "本星期")},
    **{w: ("week", -1) for w in ("上周", "上个星期", "上星期")},
    **{w: ("week", 1) for w in ("下周", "下个星期", "下星期")},
    **{w: ("month", 0) for w in ("本月", "这个月", "当月")},
    **{w: ("month", -1) for w in ("上月", "上个月")},
    **{w: ("month", 1) for w in ("下月", "下个月")},
    **{w: ("quarter", 0) for w in ("本季", "本季度", "这季度", "这个季度", "当季")},
    **{w: ("quarter", -1) for w in ("上季", "上季度", "上个季度")},
    **{w: ("quarter", 1) for w in ("下季", "下季度", "下个季度")},
    **{w: ("year", 0) for w in ("本年", "今年", "本年度", "当年")},
    **{w: ("year", -1) for w in ("去年", "上年", "上一年")},
    **{w: ("year", 1) for w in ("明年", "下年", "下一年")},
}

# Text is NFKC-folded, upper-cased and stripped of spaces before matching.
_YEAR_RE: Final = re.compile(r"(\d{4})年?", re.ASCII)
_QUARTER_RE: Final = re.compile(r"(?:(\d{4})年?)?(?:Q(\d{1,2})|第?([一二三四五六七八九\d]{1,2})季度?)", re.ASCII)
_MONTH_RE: Final = re.compile(r"(\d{4})(?:[-/.]|年)(\d{1,2})月?|(\d{1,2})月(?:份)?", re.ASCII)
_WEEK_RE: Final = re.compile(r"(\d{4})(?:-?W|年第)(\d{1,2})周?", re.ASCII)
_SHAPED_RE: Final = re.compile(r"\d{4}.*|\d{1,2}月份?|Q\d+|第.+季度?|.*[周季]|\d{4}年")


@dataclass(frozen=True)
class Period:
    """A year, quarter, month or ISO week: local dates `[start, end)` and the key it is stored under."""

    kind: PeriodKind
    start: date
    end: date
    key: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def label(self, today: date | None = None) -> str:
        """Chinese name of the period; the year is left out when it is `today`'s year (3月, 第1季度)."""
        year = self.start.year if self.kind != "week" else self.start.isocalendar().year
        prefix = "" if today is not None and year == today.year else f"{year}年"
        if self.kind == "year":
            return f"{year}年"
        if self.kind == "quarter":
            return f"{prefix}第{self.key[-1]}季度"
        if self.kind == "month":
            return f"{prefix}{self.start.month}月"
        return f"{prefix}第{self.start.isocalendar().week}周（{self.start.month}月{self.start.day}日起）"

    def parent(self) -> Period | None:
        """The longer period a target splits down from: month → quarter → year (a week has several)."""
        if self.kind == "month":
            return quarter_of(self.start.year, (self.start.month - 1) // 3 + 1)
        if self.kind == "quarter":
            return year_of(self.start.year)
        return None

    def children(self) -> list[Period]:
        """year → its quarters, quarter → its months; months and weeks split by working days instead."""
        if self.kind == "year":
            return [quarter_of(self.start.year, q) for q in range(1, 5)]
        if self.kind == "quarter":
            return [month_of(self.start.year, self.start.month + i) for i in range(3)]
        return []

    def months(self) -> list[Period]:
        """The months this period touches (a week may cross a month boundary)."""
        found: list[Period] = []
        day = self.start
        while day < self.end:
            month = month_of(day.year, day.month)
            found.append(month)
            day = month.end
        return found

    def shift(self, steps: int) -> Period:
        """The period `steps` periods later (negative: earlier) of the same kind."""
        if self.kind == "week":
            return week_of(self.start + timedelta(weeks=steps))
        if self.kind == "year":
            return year_of(self.start.year + steps)
        size = 3 if self.kind == "quarter" else 1
        index = self.start.year * 12 + self.start.month - 1 + steps * size
        if self.kind == "quarter":
            return quarter_of(index // 12, (index % 12) // 3 + 1)
        return month_of(index // 12, index % 12 + 1)


def _check_year(year: int, text: str, example: str) -> int:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise UserError(f"年份「{text}」超出范围，只能是 {_RANGE_TEXT} 年。", example=example)
    return year


def year_of(year: int) -> Period:
    return Period("year", date(year, 1, 1), date(year + 1, 1, 1), f"{year:04d}")


def quarter_of(year: int, quarter: int) -> Period:
    first = date(year, 3 * quarter - 2, 1)
    end = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return Period("quarter", first, end, f"{year:04d}Q{quarter}")


def month_of(year: int, month: int) -> Period:
    end = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return Period("month", date(year, month, 1), end, f"{year:04d}-{month:02d}")


def week_of(day: date) -> Period:
    """The ISO week (Monday to Sunday) holding `day`."""
    monday = day - timedelta(days=day.weekday())
    iso = monday.isocalendar()
    return Period("week", monday, monday + timedelta(days=7), f"{iso.year:04d}-W{iso.week:02d}")


def current(kind: PeriodKind, today: date) -> Period:
    """The period of `kind` that holds `today`."""
    if kind == "week":
        return week_of(today)
    if kind == "month":
        return month_of(today.year, today.month)
    if kind == "quarter":
        return quarter_of(today.year, (today.month - 1) // 3 + 1)
    return year_of(today.year)


def _clean(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).upper()


def looks_like_period(word: str) -> bool:
    """True for a word meant as a period, valid or not (`13月`, `2027Q9` are periods to refuse, not amounts).

    A bare four-digit number is a year only when the caller has nothing else to read it as, so it is not
    counted here; see `is_bare_year`.
    """
    cleaned = _clean(word)
    if cleaned in _RELATIVE:
        return True
    if re.fullmatch(r"\d+", cleaned):
        return False
    return bool(_SHAPED_RE.fullmatch(cleaned)) and not re.fullmatch(r"[\d.,]+[万亿千百KW]?元?", cleaned)


def is_bare_year(word: str) -> bool:
    """`2027` (or `2027年`): a year where a value is also present (目标 团队 2027 5000万)."""
    return bool(re.fullmatch(r"\d{4}年?", _clean(word)))


def is_plausible_year(word: str) -> bool:
    """A bare year inside the accepted range (目标 2027 is the year, 目标 5000 is an amount)."""
    return is_bare_year(word) and MIN_YEAR <= int(_clean(word).rstrip("年")) <= MAX_YEAR


def parse_period(text: str, today: date, example: str = PERIOD_EXAMPLE) -> Period:
    """Read a period relative to `today` (a local date). A bare month already half a year gone is next year's."""
    cleaned = _clean(text)
    echo = text.strip() if len(text.strip()) <= 20 else text.strip()[:20] + "…"
    if cleaned in _RELATIVE:
        kind, steps = _RELATIVE[cleaned]
        return current(kind, today).shift(steps)
    if found := _WEEK_RE.fullmatch(cleaned):
        year = _check_year(int(found[1]), echo, example)
        week = int(found[2])
        weeks_in_year = date(year, 12, 28).isocalendar().week
        if not 1 <= week <= weeks_in_year:
            raise UserError(f"{year} 年没有第 {week} 周（共 {weeks_in_year} 周）。", example=example)
        return week_of(date.fromisocalendar(year, week, 1))
    if found := _QUARTER_RE.fullmatch(cleaned):
        year = _check_year(int(found[1]), echo, example) if found[1] else today.year
        raw = found[2] or found[3]
        quarter = _CN_NUM[raw] if raw in _CN_NUM else int(raw) if raw.isdigit() else 0
        if not 1 <= quarter <= 4:
            raise UserError(f"季度「{echo}」不存在，只有 Q1–Q4。", example=example)
        return quarter_of(year, quarter)
    if found := _MONTH_RE.fullmatch(cleaned):
        month = int(found[2] or found[3])
        if not 1 <= month <= 12:
            raise UserError(f"月份「{echo}」不存在，只有 1–12 月。", example=example)
        if found[1]:
            return month_of(_check_year(int(found[1]), echo, example), month)
        # Without a year, a month more than half a year back means next year's.
        return month_of(today.year + (1 if month < today.month - 6 else 0), month)
    if found := _YEAR_RE.fullmatch(cleaned):
        return year_of(_check_year(int(found[1]), echo, example))
    raise UserError(
        f"期间「{echo}」看不懂，可以写：本周、本月、上月、本季、本年、2027、2027Q1、2027-03、3月。", example=example
    )


def period_from_key(key: str) -> Period:
    """The period stored under `key` ("2027", "2027Q1", "2027-03", "2027-W05"); ValueError for anything else."""
    if found := re.fullmatch(r"(\d{4})-W(\d{2})", key):
        return week_of(date.fromisocalendar(int(found[1]), int(found[2]), 1))
    if found := re.fullmatch(r"(\d{4})Q([1-4])", key):
        return quarter_of(int(found[1]), int(found[2]))
    if found := re.fullmatch(r"(\d{4})-(\d{2})", key):
        return month_of(int(found[1]), int(found[2]))
    if re.fullmatch(r"\d{4}", key):
        return year_of(int(key))
    raise ValueError(f"not a period key: {key!r}")
