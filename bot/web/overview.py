"""The team overview's numbers for one period, from the modules the chat reports use.

Goal progress with split targets and "due by now" is `handlers.targets.period_progress` (as `看板`), the
period's wins, follow-ups and new customers come from `storage.ledger` (as every report), the funnel is
`ledger.pipeline_at` (at the period's end for a past period, as `看板`), the 12-week trend is
`storage.trends.weekly_series` (as the retro's chart), the leaderboard the points ledger (as `排行`),
stand-up participation the retro's. Nothing here writes a query of its own for a number a chat report
shows, so page and chat agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from handlers.amounts import format_amount
from handlers.commands import UserError
from handlers.common import OPEN_STAGES, yuan
from handlers.periods import Period, current, period_from_key
from handlers.targets import Progress, period_progress
from schedules.jobs import TeamSchedule
from schedules.manager_reports import participation
from storage import goals as goal_store
from storage import ledger, points, trends
from storage.forecast import forecast
from storage.manager_numbers import team_roster
from storage.store import Store

PERIOD_WORDS = {"week": "本周", "month": "本月", "quarter": "本季"}


def period_of(key: str | None, today: date) -> Period | None:
    """`week`, `month`, `quarter` (the one containing today) or a period key (`2026-11`, `2026Q4`,
    `2026-W48`, `2026`); None when it does not read."""
    key = key or "month"
    if key in PERIOD_WORDS:
        return current(key, today)  # type: ignore[arg-type]
    try:
        return period_from_key(key)
    except (UserError, ValueError):
        return None


def money(fen: int | float | None) -> str:
    return format_amount(yuan(round(fen))) if fen else "0"


@dataclass
class Overview:
    period: Period
    label: str
    kpis: list[tuple[str, str]] = field(default_factory=list)
    goals: list[dict[str, object]] = field(default_factory=list)
    timing: str = ""
    funnel: list[dict[str, object]] = field(default_factory=list)
    trend: list[dict[str, object]] = field(default_factory=list)
    leaderboard: list[dict[str, object]] = field(default_factory=list)
    help: list[dict[str, object]] = field(default_factory=list)
    participation: str = "—"
    forecast: list[dict[str, object]] = field(default_factory=list)
    forecast_total: str = ""
    forecast_left_out: list[str] = field(default_factory=list)
    charts: dict[str, object] = field(default_factory=dict)


async def build_overview(store: Store, period: Period, now: datetime) -> Overview:
    today = now.astimezone(ZoneInfo(store.org.timezone)).date()
    start, end = goal_store.local_bounds(store, period.start, period.end)
    view = Overview(period, period.label(today))
    # The team row of the goal progress is the ledger's period numbers (wins net of un-wins, credited
    # amounts, claims, follow-ups): the KPIs read it instead of asking the ledger twice.
    team = await _goals(store, view, today)
    view.kpis = [
        ("赢单", f"{team['won_count'].actual} 个"),
        ("赢单金额", f"{money(team['won_amount'].actual)} 元"),
        ("新客户", f"{team['new_customers'].actual} 个"),
        ("跟进", f"{team['followups'].actual} 次"),
    ]
    past = period.end <= today
    pipeline = await ledger.pipeline_at(store, end if past else now)
    for stage in OPEN_STAGES:
        total = pipeline.get(stage, ledger.StageTotal())
        view.funnel.append({"stage": stage, "count": total.count, "value": money(total.fen),
                            "value_yuan": total.fen / 100})
    for week in await trends.weekly_series(store, now):
        view.trend.append({"week": f"{week.start.month}/{week.start.day}", "followups": week.followups,
                           "new_customers": week.new_customers, "wins": week.wins})
    for member, earned in await points.leaderboard(store, start, end, limit=10):
        view.leaderboard.append({"name": member.name, "points": earned})
    for item in await store.open_help_requests():
        hours = (now - item.request.created_at).total_seconds() / 3600
        age = f"{hours / 24:.0f} 天" if hours >= 48 else f"{hours:.0f} 小时"
        view.help.append({"number": item.request.number, "content": item.request.content, "age": age,
                          "requester": item.requester.name, "helper": item.helper.name if item.helper else "待接"})
    schedule = TeamSchedule.of(store.team.settings, store.org.timezone)
    roster = await team_roster(store, period.start, period.end)
    rate = await participation(store, roster, period.start, period.end, schedule, now)
    view.participation = "—" if rate is None else f"{rate * 100:.0f}%"
    if not past:  # a forecast is about what is still open: none for a period that is over
        await _forecast(store, view)
    view.charts = _charts(view)
    return view


def _charts(view: Overview) -> dict[str, object]:
    """The charts' series: the same numbers as the tables under them."""
    return {
        "goals": {"labels": [g["name"] for g in view.goals], "won": [g["won_yuan"] for g in view.goals],
                  "target": [g["target_yuan"] for g in view.goals], "due": [g["due_yuan"] for g in view.goals]},
        "funnel": {"labels": [f["stage"] for f in view.funnel], "count": [f["count"] for f in view.funnel],
                   "value": [f["value_yuan"] for f in view.funnel]},
        "trend": {"labels": [t["week"] for t in view.trend], "followups": [t["followups"] for t in view.trend],
                  "new_customers": [t["new_customers"] for t in view.trend], "wins": [t["wins"] for t in view.trend]},
        "leaderboard": {"labels": [x["name"] for x in view.leaderboard],
                        "points": [x["points"] for x in view.leaderboard]},
    }


async def _goals(store: Store, view: Overview, today: date) -> dict[str, Progress]:
    """Won amount against the (split) target per rep, and where each should be by now (the `看板` numbers);
    returns the team's row, every metric."""
    progress = await period_progress(store, view.period, today)
    view.timing = f"已过 {progress.elapsed_days}/{progress.working_days} 个工作日"
    for row in [*progress.rows, progress.team]:
        won = row.metrics["won_amount"]
        target = float(won.target.value) if won.target else None
        due = float(won.due) if won.due is not None else None
        split = "（分摊）" if won.target and won.target.split_from else ("（合计）" if won.target and
                                                                      won.target.summed else "")
        view.goals.append({
            "name": row.member.name if row.member else "团队",
            "won": money(won.actual), "won_yuan": won.actual / 100,
            "target": f"{money(target)}{split}" if target else "未设目标", "target_yuan": (target or 0) / 100,
            "by_now": money(due) if due is not None and target else "—", "due_yuan": (due or 0) / 100,
            "percent": f"{won.ratio * 100:.0f}%" if won.ratio is not None else "—",
            "team": row.member is None,
        })
    return progress.team.metrics


async def _forecast(store: Store, view: Overview) -> None:
    """The period's forecast (storage.forecast, as the digest and the retro): open deals expected to close in
    it, weighted by the team's win rate per stage, and what it leaves out."""
    found = await forecast(store, view.period.start, view.period.end)
    view.forecast_total = money(found.weighted_fen)
    for stage in OPEN_STAGES:
        row = found.by_stage.get(stage)
        if row:
            view.forecast.append({"stage": stage, "count": row.count, "value": money(row.fen),
                                  "rate": f"{found.rates[stage]}%", "weighted": money(row.weighted_fen)})
    for label, tally in (("未填预计", found.undated), ("预计已过", found.overdue)):
        if tally.count:
            view.forecast_left_out.append(f"{label} {tally.count} 个 {money(tally.fen)}（不计入）")
