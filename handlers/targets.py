"""Targets of any period, split down from longer ones, and progress against them (看板, the digest, the web board).

A manager sets what they think in: a year for the team, a quarter for a rep, a week's follow-ups. A period
without an explicit target for (member or team, metric) takes the enclosing period's, split evenly — a year
into quarters, a quarter into months, and a month into weeks by working days (a week crossing a month end
takes its share of each month's working days), so a holiday week asks for less. Where the team has no target
of its own, its target is the sum of the members' (as before).

"Where they should be by now" is the target × working days elapsed / working days in the period (today
counts as elapsed: the board is read during the day the work is done).

The numbers are pure functions of the explicit targets, the period and a `WorkCalendar`; only
`period_progress` touches storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from fractions import Fraction

from handlers.periods import Period
from schedules.calendar import WorkCalendar, calendar_for
from schedules.jobs import TeamSchedule
from storage import goals as goal_store
from storage.goals import MemberNumbers
from storage.models import Member
from storage.store import Store

# metric → how the board names it.
METRIC_NAMES: dict[str, str] = {
    "won_amount": "赢单",
    "won_count": "赢单数",
    "new_customers": "新客户",
    "followups": "跟进",
}

# (member id or None for the team, period key, metric) → explicit target.
Explicit = Mapping[tuple[int | None, str, str], int]


@dataclass(frozen=True)
class Target:
    """A target for a period: the explicit one, or a share of a longer period's (`split_from` its key)."""

    value: Fraction
    split_from: str | None = None
    summed: bool = False  # the team's target taken as the sum of the members'


@dataclass
class Progress:
    """One metric of one row: what was done, against which target, and what was due by now."""

    metric: str
    actual: int
    target: Target | None
    due_share: Fraction | None  # working days elapsed / working days in the period

    @property
    def ratio(self) -> float | None:
        if self.target is None or self.target.value <= 0:
            return None
        return float(self.actual / self.target.value)

    @property
    def due(self) -> Fraction | None:
        """The part of the target that should be done by now."""
        if self.target is None or self.due_share is None:
            return None
        return self.target.value * self.due_share


@dataclass
class RowProgress:
    """A member's (or the team's, `member` None) progress in a period, one entry per metric."""

    member: Member | None
    metrics: dict[str, Progress] = field(default_factory=dict)

    def has_target(self) -> bool:
        return any(p.target is not None for p in self.metrics.values())


@dataclass
class PeriodProgress:
    """Everything a board shows about targets in a period: the reps (best first), then the team."""

    period: Period
    working_days: int
    elapsed_days: int
    rows: list[RowProgress]
    team: RowProgress
    today: date

    @property
    def running(self) -> bool:
        """Today is inside the period (its last day included: the week is not over on Friday morning)."""
        return self.period.start <= self.today < self.period.end

    @property
    def over(self) -> bool:
        return self.period.end <= self.today

    @property
    def due_share(self) -> Fraction | None:
        return Fraction(self.elapsed_days, self.working_days) if self.working_days else None


def lineage(period: Period) -> list[Period]:
    """The period and every longer period a target for it may be split from (a week: its months' too)."""
    found: dict[str, Period] = {}
    starts = period.months() if period.kind == "week" else [period]
    if period.kind == "week":
        found[period.key] = period
    for each in starts:
        current: Period | None = each
        while current is not None:
            found[current.key] = current
            current = current.parent()
    return list(found.values())


def resolve_target(
    explicit: Explicit, member_id: int | None, period: Period, metric: str, calendar: WorkCalendar
) -> Target | None:
    """The explicit target for the period, else its share of the enclosing period's (see the module doc)."""
    own = explicit.get((member_id, period.key, metric))
    if own is not None:
        return Target(Fraction(own))
    if period.kind == "week":
        return _week_share(explicit, member_id, period, metric, calendar)
    parent = period.parent()
    if parent is None:
        return None
    above = resolve_target(explicit, member_id, parent, metric, calendar)
    if above is None:
        return None
    return Target(above.value / len(parent.children()), above.split_from or parent.key)


def _week_share(
    explicit: Explicit, member_id: int | None, week: Period, metric: str, calendar: WorkCalendar
) -> Target | None:
    total, sources = Fraction(0), []
    for month in week.months():
        month_target = resolve_target(explicit, member_id, month, metric, calendar)
        month_days = calendar.working_days_between(month.start, month.end)
        if month_target is None or not month_days:
            continue
        inside = calendar.working_days_between(max(week.start, month.start), min(week.end, month.end))
        total += month_target.value * inside / month_days
        source = month_target.split_from or month.key
        if source not in sources:
            sources.append(source)
    return Target(total, "、".join(sources)) if sources else None


def elapsed_working_days(period: Period, today: date, calendar: WorkCalendar) -> tuple[int, int]:
    """(working days elapsed by the end of `today`, working days in the period)."""
    total = calendar.working_days_between(period.start, period.end)
    upto = min(max(today + timedelta(days=1), period.start), period.end)
    return calendar.working_days_between(period.start, upto), total


def build_progress(
    period: Period,
    explicit: Explicit,
    numbers: Mapping[int, MemberNumbers],
    members: Mapping[int, Member],
    calendar: WorkCalendar,
    today: date,
) -> PeriodProgress:
    """Rows for every member with a target (explicit or split) or a result in the period, then the team."""
    elapsed, total = elapsed_working_days(period, today, calendar)
    due_share = Fraction(elapsed, total) if total else None
    ids = sorted({m for (m, _k, _metric) in explicit if m is not None} | set(numbers))
    rows: list[RowProgress] = []
    for mid in ids:
        if mid not in members:
            continue
        done = numbers.get(mid, MemberNumbers())
        row = RowProgress(members[mid])
        for metric in METRIC_NAMES:
            target = resolve_target(explicit, mid, period, metric, calendar)
            row.metrics[metric] = Progress(metric, done.get(metric), target, due_share)
        if row.has_target() or any(done.get(m) for m in METRIC_NAMES):
            rows.append(row)
    rows.sort(key=_rank)
    team = RowProgress(None)
    for metric in METRIC_NAMES:
        actual = sum(n.get(metric) for n in numbers.values())
        target = resolve_target(explicit, None, period, metric, calendar)
        if target is None:
            shares = [r.metrics[metric].target for r in rows if r.metrics[metric].target is not None]
            if shares:
                target = Target(sum((t.value for t in shares if t is not None), Fraction(0)), summed=True)
        team.metrics[metric] = Progress(metric, actual, target, due_share)
    return PeriodProgress(period, total, elapsed, rows, team, today)


def _rank(row: RowProgress) -> tuple[int, float, int]:
    """Highest won amount first, then the furthest along, then by member id (a stable order)."""
    won = row.metrics["won_amount"]
    return (-won.actual, -(won.ratio or 0.0), row.member.id if row.member else 0)


async def team_calendar(store: Store) -> WorkCalendar:
    """The team's working-day calendar (设置 日历), the one its stand-ups and digests follow.

    Async and in one place so the organisation's own holidays (read from storage) can join it.
    """
    return calendar_for(TeamSchedule.of(store.team.settings, store.org.timezone).calendar)


async def period_progress(store: Store, period: Period, today: date) -> PeriodProgress:
    """Targets (split where needed) and results of the team's members for `period`; `today` is local."""
    keys = [p.key for p in lineage(period)]
    explicit = {(g.member_id, g.period, g.metric): g.target for g in await goal_store.goals_in(store, keys)}
    start, end = goal_store.local_bounds(store, period.start, period.end)
    numbers = await goal_store.period_numbers(store, start, end)
    ids = {m for (m, _k, _metric) in explicit if m is not None} | set(numbers)
    members = await store.members_by_id(sorted(ids))
    return build_progress(period, explicit, numbers, members, await team_calendar(store), today)
