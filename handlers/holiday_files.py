"""Holiday files for `salesbot calendar import`: a CSV of days, or an iCalendar (.ics) feed.

CSV: columns `date,kind,name` or `日期,类型,名称` (UTF-8, with or without BOM, or GBK, as Excel saves it);
the kind is 假期/休/holiday or 调休/班/workday; dates in the usual forms (2027-02-06, 2027/2/6, 2027年2月6日).

.ics: every all-day VEVENT, DTSTART to DTEND (exclusive, as RFC 5545 says; one day without DTEND), as the
public 中国节假日 feeds publish them: a SUMMARY containing 班 (补班, 上班) is a make-up working day, one
containing 休 or 假 a holiday. Read with `icalendar` (collective/icalendar): line folding, escaped text,
VALUE=DATE versus date-times and DURATION are the format's, and a few lines of our own would get them
wrong on the first feed that folds a long SUMMARY. Imported only here, so the bot never loads it.

Bad rows and events are reported with their number and skipped; the good ones are imported.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from handlers.dates import DateError, parse_date
from schedules.calendar import HOLIDAY, WORKDAY
from storage.calendar_days import DayEntry

MAX_NAME = 16
MAX_EVENT_DAYS = 60

_KIND_WORDS = {
    "假期": HOLIDAY, "假": HOLIDAY, "休": HOLIDAY, "放假": HOLIDAY, "休息": HOLIDAY, "holiday": HOLIDAY,
    "off": HOLIDAY, "调休": WORKDAY, "班": WORKDAY, "补班": WORKDAY, "上班": WORKDAY, "调休上班": WORKDAY,
    "workday": WORKDAY, "work": WORKDAY,
}  # fmt: skip
_HEADERS = {"date": "date", "日期": "date", "kind": "kind", "类型": "kind", "name": "name", "名称": "name"}
# What a feed's SUMMARY says besides the name: 「春节 休」「春节（补班）」「元旦假期」「国庆节 上班」.
_MARKERS = re.compile(r"[（(\[【]?\s*(?:补班|上班|调休|放假|假期|休息|休|班)\s*[)）\]】]?")


class HolidayFileError(ValueError):
    """A file that cannot be read at all (missing, unknown type, no date column); the message is Chinese."""


@dataclass
class HolidayFile:
    """The days a file names (one per day, the last mention wins) and the rows that were skipped."""

    days: dict[date, DayEntry] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, entry: DayEntry) -> None:
        self.days[entry.day] = entry

    @property
    def entries(self) -> list[DayEntry]:
        return [self.days[d] for d in sorted(self.days)]


def read_holiday_file(path: Path, today: date) -> HolidayFile:
    """Read a .csv or .ics file of holidays and make-up days (`today` anchors dates written without a year)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise HolidayFileError(f"读不到文件 {path}：{err.strerror or err}") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        found = read_csv(_decode(data), today)
    elif suffix in (".ics", ".ical", ".ifb"):
        found = read_ics(data)
    else:
        raise HolidayFileError(f"不支持的文件类型「{path.suffix}」：请用 .csv（日期,类型,名称）或 .ics。")
    return found


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise HolidayFileError("CSV 文件的编码不认识：请存为 UTF-8 或 GBK。")


def read_csv(text: str, today: date) -> HolidayFile:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise HolidayFileError("CSV 文件是空的：第一行应是表头 日期,类型,名称（或 date,kind,name）。")
    columns = {key: i for i, h in enumerate(rows[0]) if (key := _header(h))}
    if "date" not in columns or "kind" not in columns:
        raise HolidayFileError(f"CSV 缺少列：表头应是 日期,类型,名称（或 date,kind,name），不是 {','.join(rows[0])}。")
    found = HolidayFile()
    for number, row in enumerate(rows[1:], start=2):
        cells = {key: row[i].strip() if i < len(row) else "" for key, i in columns.items()}
        if not any(cells.values()):
            continue
        kind = _KIND_WORDS.get(cells["kind"].lower())
        if kind is None:
            found.problems.append(f"第 {number} 行：类型「{cells['kind']}」不认识（假期/调休，或 holiday/workday）")
            continue
        try:
            day = parse_date(cells["date"], today)
        except DateError as err:
            found.problems.append(f"第 {number} 行：{str(err).split('。')[0]}")
            continue
        found.add(DayEntry(day, kind, cells.get("name", "")[:MAX_NAME]))
    return found


def _header(text: str) -> str | None:
    """A column's key; `类型（假期/调休）` and ` Date ` count as 类型 and date."""
    folded = unicodedata.normalize("NFKC", text).strip().lower().partition("(")[0].strip()
    return _HEADERS.get(folded)


def read_ics(data: bytes) -> HolidayFile:
    from icalendar import Calendar

    try:
        calendar = Calendar.from_ical(data)
    except ValueError as err:
        raise HolidayFileError(f"不是有效的 iCalendar 文件：{err}") from None
    found = HolidayFile()
    for number, event in enumerate(calendar.walk("VEVENT"), start=1):
        summary = str(event.get("SUMMARY", "")).strip()
        label = f"第 {number} 个事件「{summary}」"
        kind = WORKDAY if "班" in summary else HOLIDAY if ("休" in summary or "假" in summary) else None
        if kind is None:
            found.problems.append(f"{label}：标题里没有「休」或「班」，不知道是假期还是调休上班")
            continue
        days = _event_days(event)
        if days is None:
            found.problems.append(f"{label}：没有可用的开始/结束日期（DTSTART/DTEND）")
            continue
        if not 1 <= len(days) <= MAX_EVENT_DAYS:
            found.problems.append(f"{label}：跨 {len(days)} 天，不像是一个假期")
            continue
        name = _MARKERS.sub(" ", summary).strip()[:MAX_NAME]
        for day in days:
            found.add(DayEntry(day, kind, name))
    return found


def _event_days(event: Any) -> list[date] | None:
    """The dates an event covers: [DTSTART, DTEND), DTSTART + DURATION, or DTSTART's one day."""
    start = _as_day(event.get("DTSTART"))
    if start is None:
        return None
    end = _as_day(event.get("DTEND"))
    duration = event.get("DURATION")
    if end is None and duration is not None and isinstance(duration.dt, timedelta):
        end = start + timedelta(days=max(duration.dt.days, 1))
    if end is None or end <= start:
        end = start + timedelta(days=1)
    return [start + timedelta(days=i) for i in range((end - start).days)]


def _as_day(prop: object) -> date | None:
    value = getattr(prop, "dt", None)
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else None
