"""SQL behind the manager digest and the weekly retro: plain numbers, bounded by team and period.

Wins, claims and follow-ups per member are the ledger's (storage.ledger), so the digest, the retro,
看板 and the export agree for the same period. Every query filters on the team and a time range that
an index leads with (followups(team_id, created_at), audit_log(team_id, action, created_at),
customers(team_id, last_activity_at), customers(team_id, created_at), help_requests(team_id,
created_at|taken_at|resolved_at)), so the cost follows the team's activity in the period, not the size of its history.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from storage.deals import open_deal_exists
from storage.ledger import Activity, PeriodWins, activity_by_member, period_wins
from storage.models import Customer, FollowUp, HelpRequest, Member, StandupAnswer
from storage.store import Store


@dataclass
class RepDay:
    member_id: int
    claims: int = 0
    followups: int = 0
    stage_changes: list[tuple[str, str | None, str]] = field(default_factory=list)  # (customer, before, after)


@dataclass
class PoolSoon:
    customer: str
    owner_id: int
    last_activity_at: datetime


@dataclass
class DigestNumbers:
    """The day's activity per rep and the customers about to go back to the pool; wins, losses and
    waiting help are the shared sections (schedules.manager_reports)."""

    reps: dict[int, RepDay]
    pool_soon: list[PoolSoon]
    members: dict[int, Member]


@dataclass
class WeekNumbers:
    won_count: int = 0  # net of un-wins in the week (storage.ledger)
    won_fen: int = 0
    unwon_count: int = 0  # of which: un-wins of earlier weeks' wins, and their (negative) amount
    unwon_fen: int = 0
    stage_moves: dict[str, int] = field(default_factory=dict)
    new_customers: int = 0
    followups_by_rep: dict[int, int] = field(default_factory=dict)
    help_raised: int = 0
    help_taken: int = 0
    help_resolved: int = 0
    median_take_hours: float | None = None
    top_helpers: list[tuple[int, int]] = field(default_factory=list)
    went_idle: list[str] = field(default_factory=list)
    went_idle_count: int = 0

    @property
    def followups(self) -> int:
        return sum(self.followups_by_rep.values())


class ReportStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.session = store.session

    @property
    def team_id(self) -> int:
        return self.store.team.id

    # ------------------------------------------------------------------ digest
    async def digest_numbers(
        self,
        start: datetime,
        end: datetime,
        now: datetime,
        pool_days: int,
        warn_days: int = 3,
        activity: dict[int, Activity] | None = None,
    ) -> DigestNumbers:
        """The day's numbers; `activity` is the ledger's for [start, end) when the caller already has it."""
        team_id = self.team_id
        reps: dict[int, RepDay] = {}

        def rep(member_id: int) -> RepDay:
            return reps.setdefault(member_id, RepDay(member_id))

        # Claims, follow-ups and wins are the ledger's numbers (storage.ledger), as every report's.
        if activity is None:
            activity = await activity_by_member(self.store, start, end)
        for member_id, done in activity.items():
            rep(member_id).claims, rep(member_id).followups = done.new_customers, done.followups
        changes = await self.session.execute(
            select(
                FollowUp.author_id,
                Customer.name,
                FollowUp.stage_before,
                FollowUp.stage_after,
            )
            .join(Customer, Customer.id == FollowUp.customer_id)
            .where(
                FollowUp.team_id == team_id,
                FollowUp.created_at >= start,
                FollowUp.created_at < end,
                FollowUp.stage_after.is_not(None),
            )
            .order_by(FollowUp.created_at, FollowUp.id)
        )
        for author_id, name, before, after in changes.all():
            if after is not None:  # excluded by the query; narrows the type
                rep(author_id).stage_changes.append((name, before, after))
        soon = await self.session.execute(
            select(Customer.name, Customer.owner_id, Customer.last_activity_at)
            .where(
                Customer.team_id == team_id,
                open_deal_exists(),
                Customer.last_activity_at >= now - timedelta(days=pool_days),
                Customer.last_activity_at < now - timedelta(days=pool_days - warn_days),
                Customer.owner_id.is_not(None),
            )
            .order_by(Customer.last_activity_at)
        )
        pool_soon = [PoolSoon(n, o, t) for n, o, t in soon.all() if o is not None]  # owned ones, by the query
        ids = set(reps) | {p.owner_id for p in pool_soon}
        members = await self.store.members_by_id(list(ids))
        return DigestNumbers(reps, pool_soon, members)

    # ------------------------------------------------------------------- retro
    async def week_numbers(
        self,
        start: datetime,
        end: datetime,
        idle_days: int,
        idle_names: int = 5,
        *,
        wins: PeriodWins | None = None,
        activity: dict[int, Activity] | None = None,
    ) -> WeekNumbers:
        """The week's numbers; `wins` and `activity` are the ledger's for [start, end) when the caller has them."""
        team_id = self.team_id
        week = WeekNumbers()
        in_range = (FollowUp.team_id == team_id, FollowUp.created_at >= start, FollowUp.created_at < end)
        if wins is None:
            wins = await period_wins(self.store, start, end)
        week.won_count, week.won_fen = wins.count, wins.fen
        week.unwon_count, week.unwon_fen = len(wins.reversals), sum(d.fen for d in wins.reversals)
        if activity is None:
            activity = await activity_by_member(self.store, start, end)
        moves = await self.session.execute(
            select(FollowUp.stage_after, func.count())
            .where(*in_range, FollowUp.stage_after.is_not(None))
            .group_by(FollowUp.stage_after)
        )
        week.stage_moves = {stage: count for stage, count in moves.all() if stage is not None}
        week.followups_by_rep = {m: a.followups for m, a in activity.items() if a.followups}
        week.new_customers = sum(a.new_customers for a in activity.values())
        await self.help_numbers(week, start, end)
        # Gone idle this week: the last activity crossed `idle_days` old during [start, end).
        idle_where = (
            Customer.team_id == team_id,
            open_deal_exists(),
            Customer.last_activity_at >= start - timedelta(days=idle_days),
            Customer.last_activity_at < end - timedelta(days=idle_days),
            Customer.owner_id.is_not(None),
        )
        week.went_idle_count = (
            await self.session.execute(select(func.count()).select_from(Customer).where(*idle_where))
        ).scalar_one()
        names = await self.session.execute(
            select(Customer.name).where(*idle_where).order_by(Customer.last_activity_at).limit(idle_names)
        )
        week.went_idle = [n for (n,) in names.all()]
        return week

    async def help_numbers(self, week: WeekNumbers, start: datetime, end: datetime) -> WeekNumbers:
        """Help raised, taken (with the median time to take and the most-taking helpers) and resolved in
        [start, end), filled into `week` — the week's numbers, or the monthly retro's on their own."""
        team_id = self.team_id
        week.help_raised = (
            await self.session.execute(
                select(func.count()).select_from(HelpRequest).where(
                    HelpRequest.team_id == team_id, HelpRequest.created_at >= start, HelpRequest.created_at < end
                )
            )
        ).scalar_one()
        taken = await self.session.execute(
            select(HelpRequest.helper_id, HelpRequest.created_at, HelpRequest.taken_at).where(
                HelpRequest.team_id == team_id, HelpRequest.taken_at >= start, HelpRequest.taken_at < end
            )
        )
        taken_rows = taken.all()
        week.help_taken = len(taken_rows)
        take_hours = [(t - c).total_seconds() / 3600 for _, c, t in taken_rows if t is not None]
        if take_hours:
            week.median_take_hours = statistics.median(take_hours)
        week.help_resolved = (
            await self.session.execute(
                select(func.count()).select_from(HelpRequest).where(
                    HelpRequest.team_id == team_id, HelpRequest.resolved_at >= start, HelpRequest.resolved_at < end
                )
            )
        ).scalar_one()
        helpers: dict[int, int] = {}
        for helper_id, _, _ in taken_rows:
            if helper_id is not None:
                helpers[helper_id] = helpers.get(helper_id, 0) + 1
        week.top_helpers = sorted(helpers.items(), key=lambda p: (-p[1], p[0]))[:3]
        return week

    async def standup_answers_between(self, start: date, end: date) -> set[tuple[int, date]]:
        rows = await self.session.execute(
            select(StandupAnswer.member_id, StandupAnswer.day).where(
                StandupAnswer.team_id == self.team_id, StandupAnswer.day >= start, StandupAnswer.day < end
            )
        )
        return {(m, d) for m, d in rows.all()}
