"""The team's weekly series: the one place for "this week against the previous weeks".

The retro's chart and the web board's 12-week trend both draw from `weekly_series`, so a picture and a
page never disagree. Weeks start on Monday at the organisation's local midnight (as every report's periods,
storage.goals.local_bounds). Each number is the week's figure of storage/ledger.py (tests/test_trends.py
checks every week against it), computed for all weeks at once:

* wins — `won` deal events net of `unwon` ones, each counted in the week it happened (an un-win takes its
  win back in the week of the un-win, so a closed week never changes afterwards); amount likewise;
* follow-ups — follow-up rows of the team;
* new customers — claims (audit action `claim`) by the team's members;
* help taken — help requests of the team taken (`taken_at`) in the week.

One query per measure over the whole span, each row put into its week by a CASE over the week bounds
(portable between SQLite and PostgreSQL, and bounded by the (team, time) indexes of every table), instead
of a query per week and measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, func, select

from storage.goals import local_bounds
from storage.models import AuditLog, DealEvent, FollowUp, HelpRequest
from storage.store import Store

DEFAULT_WEEKS = 12


@dataclass(frozen=True)
class WeekPoint:
    """One week of the series; `start` is its Monday (local date)."""

    start: date
    wins: int = 0
    won_fen: int = 0
    followups: int = 0
    new_customers: int = 0
    help_taken: int = 0


def week_starts(today: date, weeks: int = DEFAULT_WEEKS) -> list[date]:
    """The Mondays of the last `weeks` weeks, oldest first, the week of `today` last."""
    this_monday = today - timedelta(days=today.weekday())
    return [this_monday - timedelta(days=7 * (weeks - 1 - i)) for i in range(weeks)]


def _week_of(column: Any, bounds: list[datetime]) -> ColumnElement[int]:
    """The index of the week a timestamp falls in (bounds: each week's start, then the last week's end)."""
    return case(*((column < bound, index) for index, bound in enumerate(bounds[1:])), else_=len(bounds) - 1)


async def weekly_series(store: Store, now: datetime, weeks: int = DEFAULT_WEEKS) -> list[WeekPoint]:
    """The team's last `weeks` weeks up to the one containing `now` (local), oldest first."""
    if weeks < 1:
        raise ValueError("weeks must be at least 1")
    today = now.astimezone(ZoneInfo(store.org.timezone)).date()
    mondays = week_starts(today, weeks)
    periods = [local_bounds(store, monday, monday + timedelta(days=7)) for monday in mondays]
    bounds = [period_start for period_start, _ in periods] + [periods[-1][1]]
    start, end = bounds[0], bounds[-1]
    team_id = store.team.id
    rows: dict[int, dict[str, int]] = {i: {} for i in range(weeks)}

    week = _week_of(DealEvent.created_at, bounds)
    sign = case((DealEvent.kind == "unwon", -1), else_=1)
    wins = await store.session.execute(
        select(week, func.sum(sign), func.sum(sign * func.coalesce(DealEvent.amount_fen, 0)))
        .where(
            DealEvent.team_id == team_id,
            DealEvent.kind.in_(("won", "unwon")),
            DealEvent.created_at >= start,
            DealEvent.created_at < end,
        )
        .group_by(week)
    )
    for index, count, fen in wins.all():
        rows[int(index)].update(wins=int(count or 0), won_fen=int(fen or 0))

    await _count_into(store, rows, "followups", FollowUp.created_at, bounds,
                      FollowUp.team_id == team_id)
    await _count_into(store, rows, "new_customers", AuditLog.created_at, bounds,
                      AuditLog.team_id == team_id, AuditLog.action == "claim", AuditLog.actor_id.is_not(None))
    await _count_into(store, rows, "help_taken", HelpRequest.taken_at, bounds,
                      HelpRequest.team_id == team_id)
    return [WeekPoint(monday, **rows[i]) for i, monday in enumerate(mondays)]


async def _count_into(
    store: Store, rows: dict[int, dict[str, int]], name: str, column: Any, bounds: list[datetime],
    *where: ColumnElement[bool],
) -> None:
    week = _week_of(column, bounds)
    result = await store.session.execute(
        select(week, func.count()).where(*where, column >= bounds[0], column < bounds[-1]).group_by(week)
    )
    for index, count in result.all():
        rows[int(index)][name] = int(count)
