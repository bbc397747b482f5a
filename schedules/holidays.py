"""An organisation's own holidays and 调休 days as the schedules use them: cached for the minute tick,
listed with the package's days for `salesbot calendar show`, and the December notice when the package
has no data for next year.

The tick runs for every team each minute, so it must not query the calendar of each organisation each
time. It already reads every organisation; `organisations.calendar_version` is raised by every change
(`storage.calendar_days`), so :class:`OrgCalendars` re-reads — in one query, in the tick's transaction —
only the organisations whose version moved since it last looked. Replicas each keep their own cache and
all see the same version numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import chinese_calendar

from schedules.calendar import HOLIDAY, WORKDAY, WorkCalendar, library_covers
from schedules.jobs import TeamSchedule
from storage.calendar_days import count_in_year, day_kinds
from storage.models import CalendarDay, Organisation
from storage.schedule_store import ScheduleStore
from storage.store import Store

# The package names its holidays in English; people here read Chinese.
LIBRARY_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利纪念日",
}
SOURCE_NAMES = {"library": "库 chinesecalendar", "admin": "管理员", "import": "导入"}
KIND_NAMES = {HOLIDAY: "假期", WORKDAY: "调休上班"}
NOTICE_KIND = "holiday_data"  # notices(kind, entity_id=org id, ref=year): once per organisation and year


class OrgCalendars:
    """Each organisation's days (day → "holiday"/"workday"), cached by `calendar_version`."""

    def __init__(self) -> None:
        self._days: dict[int, tuple[int, Mapping[date, str]]] = {}
        self.loads = 0  # organisations (re)read, for tests and figures

    async def refresh(self, store: Store, orgs: Iterable[Organisation]) -> None:
        """Re-read the organisations whose version differs from the cached one (one query for all)."""
        stale = {org.id: org.calendar_version for org in orgs if self._version(org.id) != org.calendar_version}
        if not stale:
            return
        for org_id, days in (await day_kinds(store, stale)).items():
            self._days[org_id] = (stale[org_id], days)
        self.loads += len(stale)

    def days_of(self, org_id: int) -> Mapping[date, str]:
        cached = self._days.get(org_id)
        return cached[1] if cached else {}

    def _version(self, org_id: int) -> int | None:
        cached = self._days.get(org_id)
        return cached[0] if cached else None


async def load_days(store: Store, org_id: int) -> Mapping[date, str]:
    """One organisation's days, straight from the database (commands and `jobs run`, not the tick)."""
    return (await day_kinds(store, [org_id]))[org_id]


async def team_calendar(store: Store) -> WorkCalendar:
    """The bound team's working-day calendar (设置 日历) with its organisation's own days in front — what
    its stand-ups and digests follow, for a command or report that counts working days (goals, 看板)."""
    return TeamSchedule.of(store.team.settings, store.org.timezone, await load_days(store, store.org.id)).work_calendar


# ------------------------------------------------------------------ listing
@dataclass(frozen=True)
class ShownDay:
    """A holiday or make-up day as `calendar show` lists it, with where it comes from."""

    day: date
    kind: str  # holiday | workday
    name: str
    source: str  # library | admin | import
    replaces: str = ""  # the package's entry an organisation's entry overrides ("假期 春节")


def year_days(year: int, entries: Iterable[CalendarDay]) -> list[ShownDay]:
    """Every holiday and make-up day of `year`: the package's, with the organisation's entries in front."""
    library: dict[date, ShownDay] = {}
    for table, kind in ((chinese_calendar.holidays, HOLIDAY), (chinese_calendar.workdays, WORKDAY)):
        for day, name in table.items():
            if day.year == year:
                library[day] = ShownDay(day, kind, LIBRARY_NAMES.get(str(name), str(name)), "library")
    shown = dict(library)
    for entry in entries:
        if entry.day.year != year:
            continue
        before = library.get(entry.day)
        replaces = f"{KIND_NAMES[before.kind]} {before.name}".strip() if before else ""
        shown[entry.day] = ShownDay(entry.day, entry.kind, entry.name, entry.source, replaces)
    return [shown[d] for d in sorted(shown)]


# ----------------------------------------------------------- missing years
def missing_years(today: date) -> list[int]:
    """Years the package lacks that matter today: this year, and next year from December on."""
    years = [today.year] if not library_covers(today.year) else []
    if today.month == 12 and not library_covers(today.year + 1):
        years.append(today.year + 1)
    return years


def missing_year_text(year: int) -> str:
    """What an admin reads when the package has no data for `year`, and what to do about it."""
    return (
        f"📅 节假日数据提醒：当前的节假日库（chinesecalendar {chinese_calendar.__version__}）还没有 {year} 年的"
        f"法定节假日和调休安排，{year} 年起未录入的日子会按周一到周五安排晨会和日报（春节期间也会照常推送）。\n"
        f"请管理员按国务院公布的安排录入（整个企业所有团队生效）：\n"
        f"· 在群里发送「设置 假期 {year}-02-06 到 {year}-02-13 春节」和「设置 调休 {year}-02-14」（日期按实际安排）\n"
        f"· 或由运维运行 salesbot calendar import 节假日.csv（或 .ics）\n"
        f"也可以升级 chinesecalendar（pip install -U chinesecalendar）。"
    )


async def year_to_announce(store: Store, today: date) -> int | None:
    """Next year, when the bound organisation's admins should hear that its holidays are missing — or None.

    In December, when the package has no data for next year and the organisation has entered nothing
    for it. Whether they have been told already is the caller's claim (:func:`claim_year_notice`).
    """
    year = today.year + 1
    if today.month != 12 or library_covers(year):
        return None
    if await count_in_year(store, store.org.id, year):
        return None
    return year


async def claim_year_notice(store: Store, year: int, now: datetime) -> bool:
    """Take the once-per-organisation-and-year key: True for the first caller (any team, any replica).

    Claimed in the firing's transaction, so a preview (rolled back) or a crash before commit claims nothing.
    """
    return await ScheduleStore(store).add_notice(NOTICE_KIND, store.org.id, str(year), now)
