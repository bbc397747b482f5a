"""The month's forecast: Σ amount × stage win rate over the open deals expected to close in the month.

One function, `forecast`, serves every place that shows a forecast (the digest, the weekly
retro, the web board), so they cannot disagree. It reads the deals as they stand now — a forecast
is about what is still open — and the team's win rates (`设置 赢率 报价 50%`, defaults in
storage.team_settings).

What is not forecast, and why: a deal without an expected close date (预计) cannot be placed in a
month, and one whose date has passed without a close says nothing reliable about this month. Both
are counted apart ("未填预计", "预计已过") so a manager sees how much of the pipeline the forecast
does not cover and can ask the owners for dates, instead of the number silently including them.
Deals without an amount count in the numbers of deals with no value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import case, func, select

from storage.models import Deal
from storage.store import Store
from storage.team_settings import DEFAULT_WIN_RATES, win_rates


@dataclass
class StageForecast:
    count: int = 0
    fen: int = 0  # the deals' amounts
    weighted_fen: int = 0  # amounts × the stage's win rate


@dataclass
class Tally:
    count: int = 0
    fen: int = 0


@dataclass
class Forecast:
    """The forecast of the local days [first, end) — a month as the reports use it: weighted value by
    stage, and what it leaves out."""

    first: date
    end: date
    rates: dict[str, int]
    by_stage: dict[str, StageForecast] = field(default_factory=dict)
    undated: Tally = field(default_factory=Tally)  # open, no 预计
    overdue: Tally = field(default_factory=Tally)  # open, 预计 before the month

    @property
    def weighted_fen(self) -> int:
        return sum(s.weighted_fen for s in self.by_stage.values())

    @property
    def count(self) -> int:
        return sum(s.count for s in self.by_stage.values())


async def forecast(store: Store, first: date, end: date) -> Forecast:
    """The bound team's forecast for the days [first, end) (the organisation's calendar; the reports
    pass a month, handlers.periods.month_of).

    Summed in the database by stage and by where 预计 falls (index deals(team_id, status, …)), so the
    cost is one grouped scan of the team's open deals, not a row per deal through Python. The
    weighted value is each stage's total × its rate, rounded down to the fen.
    """
    rates = win_rates(store.team.settings)
    bucket = case(
        (Deal.expected_close_on.is_(None), "undated"),
        (Deal.expected_close_on < first, "overdue"),
        (Deal.expected_close_on < end, "due"),
        else_="later",
    )
    rows = await store.session.execute(
        select(Deal.stage, bucket, func.count(), func.coalesce(func.sum(Deal.amount_fen), 0))
        .where(Deal.org_id == store.org.id, Deal.team_id == store.team.id, Deal.status == "open")
        .group_by(Deal.stage, bucket)
    )
    found = Forecast(first, end, rates)
    for stage, where, count, fen in rows.all():
        if where in ("undated", "overdue"):
            tally = found.undated if where == "undated" else found.overdue
            tally.count += int(count)
            tally.fen += int(fen)
        elif where == "due" and stage in DEFAULT_WIN_RATES:
            found.by_stage[stage] = StageForecast(int(count), int(fen), int(fen) * rates[stage] // 100)
    return found
