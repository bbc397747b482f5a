"""Monthly targets and the numbers they are measured against (目标, 看板, the manager digest).

Won amount is the member's credited amount of the month's wins net of un-wins (业绩分成, from the
ledger, storage.ledger). New customers count the member's claims (audit action "claim": new
customers and customers taken from the pool) in the month.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from storage.ledger import activity_by_member, period_wins
from storage.models import Customer, Deal, Goal, Member
from storage.store import Store

METRICS = ("won_amount", "new_customers")


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


async def set_goal(
    store: Store, member: Member | None, month: str, metric: str, target: int, now: datetime
) -> int | None:
    """Create or replace a target; returns the previous target (None when there was none)."""
    assert metric in METRICS
    existing = (
        await store.session.execute(
            select(Goal).where(
                Goal.org_id == store.org.id,
                Goal.team_id == store.team.id,
                Goal.month == month,
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
            month=month,
            metric=metric,
            target=target,
            set_by_id=actor.id if actor else None,
            updated_at=now,
        )
        store.session.add(goal)
        await store.session.flush()
    else:
        goal = existing
        goal.target = target
        goal.set_by_id = actor.id if actor else None
        goal.updated_at = now
    await store.audit(
        "set_goal", "goal", goal.id, {"target": before},
        {"member": member.id if member else None, "month": month, "metric": metric, "target": target}, now,
    )
    return before


async def goals_for_month(store: Store, month: str) -> dict[tuple[int | None, str], int]:
    """{(member_id or None for the team, metric): target} for one month."""
    rows = await store.session.execute(
        select(Goal.member_id, Goal.metric, Goal.target).where(
            Goal.org_id == store.org.id, Goal.team_id == store.team.id, Goal.month == month
        )
    )
    return {(m, metric): target for m, metric, target in rows.all()}


async def won_amounts(store: Store, start: datetime, end: datetime) -> dict[int, int]:
    """{member id: credited won amount in fen} in [start, end), net of un-wins (storage.ledger)."""
    wins = await period_wins(store, start, end)
    return {m: credit.fen for m, credit in wins.by_member.items() if credit.fen or credit.count}


async def new_customer_counts(store: Store, start: datetime, end: datetime) -> dict[int, int]:
    """{member id: customers claimed in [start, end)}, from the audit trail (storage.ledger)."""
    activity = await activity_by_member(store, start, end)
    return {m: a.new_customers for m, a in activity.items() if a.new_customers}


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


async def followup_counts(store: Store, start: datetime, end: datetime) -> dict[int, int]:
    """{author member id: follow-up records written in [start, end)} (storage.ledger)."""
    activity = await activity_by_member(store, start, end)
    return {m: a.followups for m, a in activity.items() if a.followups}


@dataclass
class GoalProgress:
    """One row of goal progress for a month.

    `member` is None for the team row. Amounts are in fen; `target_fen` / `new_target` are None
    when no target was set. `ratio` is won/target (None without a target) and may exceed 1.
    For the team row, `target_fen` is the team's own target, or the sum of the reps' targets when
    the team has none (then `target_is_sum` is True).
    """

    member: Member | None
    won_fen: int
    target_fen: int | None
    new_customers: int = 0
    new_target: int | None = None
    target_is_sum: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if not self.target_fen:
            return None
        return self.won_fen / self.target_fen


async def goal_progress(store: Store, month: str) -> list[GoalProgress]:
    """Won amount against target for every rep with a target or a result in `month`, then the team.

    Returns `[GoalProgress(member, ...), ..., GoalProgress(None, ...)]`: reps ordered by won amount
    (highest first), the team total always last. `month` is "YYYY-MM" in the organisation's time zone.
    """
    start, end = month_bounds(store, month)
    goals = await goals_for_month(store, month)
    won = await won_amounts(store, start, end)
    new = await new_customer_counts(store, start, end)
    ids = {m for (m, _metric) in goals if m is not None} | set(won) | set(new)
    members = await store.members_by_id(list(ids))
    rows = [
        GoalProgress(
            member=members[mid],
            won_fen=won.get(mid, 0),
            target_fen=goals.get((mid, "won_amount")),
            new_customers=new.get(mid, 0),
            new_target=goals.get((mid, "new_customers")),
        )
        for mid in ids
        if mid in members
    ]
    rows.sort(key=lambda r: (-r.won_fen, -(r.target_fen or 0), r.member.id if r.member else 0))
    team_target = goals.get((None, "won_amount"))
    rep_targets = [r.target_fen for r in rows if r.target_fen]
    team = GoalProgress(
        member=None,
        won_fen=sum(won.values()),
        target_fen=team_target if team_target is not None else (sum(rep_targets) if rep_targets else None),
        new_customers=sum(new.values()),
        new_target=goals.get((None, "new_customers")),
        target_is_sum=team_target is None and bool(rep_targets),
    )
    return [*rows, team]

