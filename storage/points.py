"""The collaboration-points ledger (协作积分): append-only, every entry names its cause.

Awards carry the help request or customer that caused them; undoing the cause never deletes or edits
an entry but writes a reversing entry (negative points, `reverses_id` → the entry it cancels). The
unique constraint on `reverses_id` makes sure one entry is reversed at most once, even if two
reversals race.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from storage.models import Customer, HelpRequest, Member, PointsEntry
from storage.store import Store


async def award(
    store: Store,
    member: Member,
    points: int,
    reason: str,
    now: datetime,
    *,
    help_request: HelpRequest | None = None,
    customer: Customer | None = None,
) -> PointsEntry | None:
    """Write one ledger entry in the current transaction; zero points (a rule switched off) writes nothing."""
    if points == 0:
        return None
    actor = store.scope.actor
    entry = PointsEntry(
        org_id=store.org.id,
        team_id=store.team.id,
        member_id=member.id,
        points=points,
        reason=reason,
        help_request_id=help_request.id if help_request else None,
        customer_id=customer.id if customer else None,
        actor_id=actor.id if actor else None,
        msg_id=store.scope.msg_id,
        created_at=now,
    )
    store.session.add(entry)
    await store.session.flush()
    return entry


async def reverse(
    store: Store,
    reason: str,
    reversal_reason: str,
    now: datetime,
    *,
    help_request: HelpRequest | None = None,
    customer: Customer | None = None,
) -> list[tuple[Member, int]]:
    """Cancel every not-yet-reversed entry of `reason` for this cause; returns (member, points written)."""
    reversal = aliased(PointsEntry)
    query = (
        select(PointsEntry)
        .outerjoin(reversal, reversal.reverses_id == PointsEntry.id)
        .where(
            PointsEntry.org_id == store.org.id,
            PointsEntry.team_id == store.team.id,
            PointsEntry.reason == reason,
            PointsEntry.reverses_id.is_(None),
            reversal.id.is_(None),
        )
        .order_by(PointsEntry.id)
    )
    if help_request is not None:
        query = query.where(PointsEntry.help_request_id == help_request.id)
    if customer is not None:
        query = query.where(PointsEntry.customer_id == customer.id)
    entries = list((await store.session.execute(query)).scalars().all())
    members = await store.members_by_id([e.member_id for e in entries])
    actor = store.scope.actor
    written: list[tuple[Member, int]] = []
    for entry in entries:
        store.session.add(
            PointsEntry(
                org_id=store.org.id,
                team_id=store.team.id,
                member_id=entry.member_id,
                points=-entry.points,
                reason=reversal_reason,
                help_request_id=entry.help_request_id,
                customer_id=entry.customer_id,
                reverses_id=entry.id,
                actor_id=actor.id if actor else None,
                msg_id=store.scope.msg_id,
                created_at=now,
            )
        )
        written.append((members[entry.member_id], -entry.points))
    await store.session.flush()
    return written


async def leaderboard(store: Store, start: datetime, end: datetime, limit: int = 10) -> list[tuple[Member, int]]:
    """Members of the team by net points earned in [start, end), highest first; zero totals left out."""
    total = func.sum(PointsEntry.points)
    rows = await store.session.execute(
        select(Member, total)
        .join(PointsEntry, PointsEntry.member_id == Member.id)
        .where(
            PointsEntry.org_id == store.org.id,
            PointsEntry.team_id == store.team.id,
            Member.org_id == store.org.id,
            PointsEntry.created_at >= start,
            PointsEntry.created_at < end,
        )
        .group_by(Member.id)
        .having(total != 0)
        .order_by(total.desc(), Member.id)
        .limit(limit)
    )
    return [(m, int(p)) for m, p in rows.all()]


async def top_helpers(store: Store, start: datetime, end: datetime, limit: int = 3) -> list[tuple[Member, int]]:
    """The weekly retro's 协作之星: `[(Member, net points), ...]` for [start, end), best first.

    Only members with a positive net total are listed (at most `limit`); ties are broken by member id
    so the result is stable. The store must be bound to the team (`bind` or `bind_team`).
    """
    return [(m, p) for m, p in await leaderboard(store, start, end, limit) if p > 0]


async def member_total(store: Store, member: Member) -> int:
    """A member's all-time net points in this team."""
    total = (
        await store.session.execute(
            select(func.coalesce(func.sum(PointsEntry.points), 0)).where(
                PointsEntry.org_id == store.org.id,
                PointsEntry.team_id == store.team.id,
                PointsEntry.member_id == member.id,
            )
        )
    ).scalar_one()
    return int(total)


async def ledger(store: Store) -> list[tuple[PointsEntry, Member, HelpRequest | None, Customer | None]]:
    """The whole ledger of the team, oldest first, with the member and the cause (for export)."""
    rows = await store.session.execute(
        select(PointsEntry, Member, HelpRequest, Customer)
        .join(Member, Member.id == PointsEntry.member_id)
        .outerjoin(HelpRequest, HelpRequest.id == PointsEntry.help_request_id)
        .outerjoin(Customer, Customer.id == PointsEntry.customer_id)
        .where(PointsEntry.org_id == store.org.id, PointsEntry.team_id == store.team.id)
        .order_by(PointsEntry.created_at, PointsEntry.id)
    )
    return [(e, m, h, c) for e, m, h, c in rows.all()]
