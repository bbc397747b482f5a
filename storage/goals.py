"""Targets of any period and the numbers they are measured against (目标, 看板, the manager digest).

A target row is keyed by a period key (handlers/periods.py: "2027", "2027Q1", "2027-03", "2027-W05") and
a metric, and remembers who set it in which role. The results come from storage/ledger.py — the credited
won amount net of un-wins, wins, claims and follow-ups — so a goal agrees with every report of the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from storage import ledger
from storage.models import Customer, Deal, Goal, Member
from storage.store import Store

METRICS = ("won_amount", "won_count", "new_customers", "followups")
LEAD_ROLES = ("lead", "admin")


def month_bounds(store: Store, month: str) -> tuple[datetime, datetime]:
    """`"2026-11"` → [start, end) as aware datetimes at local midnight of the organisation."""
    year, mon = (int(x) for x in month.split("-"))
    tz = ZoneInfo(store.org.timezone)
    start = datetime(year, mon, 1, tzinfo=tz)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=tz)
    return start, end


def local_bounds(store: Store, first: date, last_exclusive: date) -> tuple[datetime, datetime]:
    tz = ZoneInfo(store.org.timezone)
    return (
        datetime(first.year, first.month, first.day, tzinfo=tz),
        datetime(last_exclusive.year, last_exclusive.month, last_exclusive.day, tzinfo=tz),
    )


@dataclass(frozen=True)
class GoalTarget:
    """One explicit target row: whose (None = the team), which period key and metric, and who set it."""

    member_id: int | None
    period: str
    metric: str
    target: int
    set_by_id: int | None
    set_by_role: str

    @property
    def lead_set(self) -> bool:
        """Set by a lead or admin — then a rep may not change it."""
        return self.set_by_role in LEAD_ROLES


async def goals_in(store: Store, periods: list[str]) -> list[GoalTarget]:
    """The team's explicit targets for any of the period keys (a board needs its period and the longer ones)."""
    if not periods:
        return []
    rows = await store.session.execute(
        select(Goal.member_id, Goal.period, Goal.metric, Goal.target, Goal.set_by_id, Goal.set_by_role).where(
            Goal.org_id == store.org.id, Goal.team_id == store.team.id, Goal.period.in_(periods)
        )
    )
    return [GoalTarget(*row) for row in rows.all()]


async def goal_for(store: Store, member_id: int | None, period: str, metric: str) -> GoalTarget | None:
    """The explicit target of one member (None = the team) for one period and metric, if any."""
    found = [g for g in await goals_in(store, [period]) if g.member_id == member_id and g.metric == metric]
    return found[0] if found else None


async def set_goal(
    store: Store, member: Member | None, period: str, metric: str, target: int, now: datetime
) -> int | None:
    """Create or replace a target; returns the previous target (None when there was none).

    Who may set it is the handler's rule; this records the setter and their role with the row, so a
    later rep's attempt can be refused by what the row says rather than by who is a lead today.
    """
    assert metric in METRICS
    existing = (
        await store.session.execute(
            select(Goal).where(
                Goal.org_id == store.org.id,
                Goal.team_id == store.team.id,
                Goal.period == period,
                Goal.metric == metric,
                Goal.member_id.is_(None) if member is None else Goal.member_id == member.id,
            )
        )
    ).scalars().first()
    actor = store.scope.actor
    before = existing.target if existing else None
    if existing is None:
        goal = Goal(
            org_id=store.org.id,
            team_id=store.team.id,
            member_id=member.id if member else None,
            period=period,
            metric=metric,
            target=target,
            set_by_id=actor.id if actor else None,
            set_by_role=store.role,
            updated_at=now,
        )
        store.session.add(goal)
        await store.session.flush()
    else:
        goal = existing
        goal.target = target
        goal.set_by_id = actor.id if actor else None
        goal.set_by_role = store.role
        goal.updated_at = now
    await store.audit(
        "set_goal", "goal", goal.id, {"target": before},
        {"member": member.id if member else None, "period": period, "metric": metric, "target": target,
         "role": store.role}, now,
    )
    return before


async def active_by_stage(store: Store) -> dict[int, dict[str, int]]:
    """{owner member id: {stage: number of open deals}}."""
    rows = await store.session.execute(
        select(Customer.owner_id, Deal.stage, func.count())
        .join(Customer, Customer.id == Deal.customer_id)
        .where(
            Deal.org_id == store.org.id,
            Customer.team_id == store.team.id,
            Deal.status == "open",
            Customer.owner_id.is_not(None),
        )
        .group_by(Customer.owner_id, Deal.stage)
    )
    result: dict[int, dict[str, int]] = {}
    for owner, stage, n in rows.all():
        if owner is not None:  # owned ones, by the query
            result.setdefault(owner, {})[stage] = int(n)
    return result


@dataclass
class MemberNumbers:
    """One member's results in a period, in the goal metrics' terms (amounts in fen)."""

    won_amount: int = 0
    won_count: int = 0
    new_customers: int = 0
    followups: int = 0

    def get(self, metric: str) -> int:
        return int(getattr(self, metric))


async def period_numbers(store: Store, start: datetime, end: datetime) -> dict[int, MemberNumbers]:
    """{member id: results in [start, end)} for every member with any result, from the ledger.

    Won amount is the member's credited amount (业绩分成) net of un-wins; the win count goes to the owner
    at the moment of the win — the same numbers as every other report of the period.
    """
    numbers: dict[int, MemberNumbers] = {}
    for mid, credit in (await ledger.period_wins(store, start, end)).by_member.items():
        numbers[mid] = MemberNumbers(won_amount=credit.fen, won_count=credit.count)
    for mid, activity in (await ledger.activity_by_member(store, start, end)).items():
        row = numbers.setdefault(mid, MemberNumbers())
        row.new_customers, row.followups = activity.new_customers, activity.followups
    return numbers
