"""The team overview's numbers for one period, from the functions the chat reports use.

Goal progress is `storage.goals.goal_progress` (as `看板`), the period's wins, follow-ups and new customers
are the retro's `ReportStore.week_numbers` for the period's range (as `复盘`), the leaderboard is the
points ledger (as `排行`), stand-up participation the retro's. Nothing here writes a query of its own for
a number a chat report shows, so page and chat agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from handlers.amounts import format_amount
from handlers.common import OPEN_STAGES, yuan
from schedules.jobs import TeamSchedule
from schedules.runners import IDLE_DAYS, _participation
from storage import goals as goal_store
from storage import points
from storage.reports import ReportStore
from storage.store import Store

TREND_WEEKS = 12
PERIOD_WORDS = {"week": "本周", "month": "本月", "quarter": "本季"}
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Period:
    """[first, last_exclusive) in local dates, with its label and the key the page's links carry."""

    key: str
    label: str
    first: date
    end: date

    def fraction_elapsed(self, today: date) -> float:
        """How much of the period has passed by the end of `today` (0–1): where a rep "should be by now"."""
        total = (self.end - self.first).days
        done = min(max((today - self.first).days + 1, 0), total)
        return done / total if total else 1.0


def period_of(key: str | None, today: date) -> Period | None:
    """`week`, `month`, `quarter` or `YYYY-MM` → the period containing today (or that month); None if unreadable."""
    key = key or "month"
    if key == "week":
        first = today - timedelta(days=today.weekday())
        return Period(key, "本周", first, first + timedelta(days=7))
    if key == "quarter":
        first = date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
        end_month = first.month + 3
        end = date(first.year + (end_month > 12), (end_month - 1) % 12 + 1, 1)
        return Period(key, "本季", first, end)
    if key == "month":
        key = f"{today.year:04d}-{today.month:02d}"
        label = "本月"
    else:
        label = ""
    found = _MONTH.match(key)
    if not found or not 1 <= int(found.group(2)) <= 12 or not 2000 <= int(found.group(1)) <= 2100:
        return None
    year, month = int(found.group(1)), int(found.group(2))
    first = date(year, month, 1)
    end = date(year + (month == 12), month % 12 + 1, 1)
    return Period(key if label == "" else "month", label or f"{year}年{month}月", first, end)


def money(fen: int | None) -> str:
    return format_amount(yuan(fen)) if fen else "0"


@dataclass
class Overview:
    period: Period
    kpis: list[tuple[str, str]] = field(default_factory=list)
    goals: list[dict[str, object]] = field(default_factory=list)
    funnel: list[dict[str, object]] = field(default_factory=list)
    trend: list[dict[str, object]] = field(default_factory=list)
    leaderboard: list[dict[str, object]] = field(default_factory=list)
    help: list[dict[str, object]] = field(default_factory=list)
    participation: str = "—"
    charts: dict[str, object] = field(default_factory=dict)


async def build_overview(store: Store, period: Period, now: datetime) -> Overview:
    tz = ZoneInfo(store.org.timezone)
    today = now.astimezone(tz).date()
    start, end = goal_store.local_bounds(store, period.first, period.end)
    report = ReportStore(store)
    numbers = await report.week_numbers(start, end, idle_days=IDLE_DAYS)
    view = Overview(period)
    view.kpis = [
        ("赢单", f"{numbers.won_count} 个"),
        ("赢单金额", f"{money(numbers.won_fen)} 元"),
        ("新客户", f"{numbers.new_customers} 个"),
        ("跟进", f"{numbers.followups} 次"),
    ]
    await _goals(store, view, today)
    await _funnel(store, view)
    await _trend(store, report, view, today)
    for member, total in await points.leaderboard(store, start, end, limit=10):
        view.leaderboard.append({"name": member.name, "points": total})
    for item in await store.open_help_requests():
        hours = (now - item.request.created_at).total_seconds() / 3600
        age = f"{hours / 24:.0f} 天" if hours >= 48 else f"{hours:.0f} 小时"
        view.help.append({"number": item.request.number, "content": item.request.content, "age": age,
                          "requester": item.requester.name, "helper": item.helper.name if item.helper else "待接"})
    schedule = TeamSchedule.of(store.team.settings, store.org.timezone)
    rate = await _participation(store, period.first, min(period.end, today + timedelta(days=1)), schedule, now)
    view.participation = "—" if rate is None else f"{rate * 100:.0f}%"
    view.charts = {
        "goals": {"labels": [g["name"] for g in view.goals], "won": [g["won_yuan"] for g in view.goals],
                  "target": [g["target_yuan"] for g in view.goals]},
        "funnel": {"labels": [f["stage"] for f in view.funnel], "count": [f["count"] for f in view.funnel],
                   "value": [f["value_yuan"] for f in view.funnel]},
        "trend": {"labels": [t["week"] for t in view.trend], "followups": [t["followups"] for t in view.trend],
                  "new_customers": [t["new_customers"] for t in view.trend], "wins": [t["wins"] for t in view.trend]},
        "leaderboard": {"labels": [x["name"] for x in view.leaderboard],
                        "points": [x["points"] for x in view.leaderboard]},
    }
    return view


async def _goals(store: Store, view: Overview, today: date) -> None:
    """The month's goal progress per rep (the `看板` numbers) with where each should be by now."""
    period = view.period
    month = f"{period.first.year:04d}-{period.first.month:02d}"
    rows = await goal_store.goal_progress(store, month)
    elapsed = period.fraction_elapsed(today)
    for row in rows:
        target = row.target_fen
        view.goals.append({
            "name": row.member.name if row.member else "团队",
            "won": money(row.won_fen),
            "won_yuan": row.won_fen / 100,
            "target": money(target) if target else "未设目标",
            "target_yuan": (target or 0) / 100,
            "by_now": money(round(target * elapsed)) if target else "—",
            "percent": f"{row.won_fen / target * 100:.0f}%" if target else "—",
            "team": row.member is None,
        })


async def _funnel(store: Store, view: Overview) -> None:
    stages = await goal_store.active_by_stage(store)
    totals = {s: 0 for s in OPEN_STAGES}
    for per in stages.values():
        for stage, n in per.items():
            totals[stage] = totals.get(stage, 0) + n
    for stage in OPEN_STAGES:
        view.funnel.append({"stage": stage, "count": totals[stage], "value": "—", "value_yuan": 0})


async def _trend(store: Store, report: ReportStore, view: Overview, today: date) -> None:
    monday = today - timedelta(days=today.weekday())
    for back in range(TREND_WEEKS - 1, -1, -1):
        first = monday - timedelta(days=7 * back)
        start, end = goal_store.local_bounds(store, first, first + timedelta(days=7))
        week = await report.week_numbers(start, end, idle_days=IDLE_DAYS)
        view.trend.append({"week": f"{first.month}/{first.day}", "followups": week.followups,
                           "new_customers": week.new_customers, "wins": week.won_count})
