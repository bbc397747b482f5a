"""离职继承 and 移除: when a member leaves the organisation or a team, none of their customers may be orphaned.

Each customer the departed member owns goes to the lead of the team it belongs to (the first active
lead other than the departed member), or to the team's public pool (公海) when the team has none.
Every move is audit-logged with the action `offboard`; the member is marked inactive. Running it twice
moves nothing the second time, so a re-delivered event is harmless. A lead's 移除 does the same for one
team (action `remove_member`) and marks the membership as left instead of the member as inactive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from storage.models import Collaborator, Customer, Member, Membership, Organisation, Team
from storage.sql import table_of
from storage.store import Store


@dataclass
class TeamHandover:
    """What happened in one team: who inherited (None = 公海) and which customers moved."""

    team: Team
    departed: Member
    heir: Member | None
    customers: list[Customer] = field(default_factory=list)


async def hand_over_in_team(
    store: Store, member: Member, owned: list[Customer], now: datetime, *, action: str, reason: str
) -> TeamHandover:
    """Give `owned` (customers of the bound team) to the team's lead, or to its pool when it has none.

    Shared by 离职继承 (every team of a departed member) and 移除 (one team): the same heir rule and
    one audit entry per customer, under `action`.
    """
    session = store.session
    team = store.team
    heir = (
        await session.execute(
            select(Member)
            .join(Membership, Membership.member_id == Member.id)
            .where(
                Membership.team_id == team.id,
                Membership.role == "lead",
                Membership.left_at.is_(None),
                Member.active.is_(True),
                Member.id != member.id,
            )
            .order_by(Member.id)
            .limit(1)
        )
    ).scalar_one_or_none()
    for customer in owned:
        before = {"owner": member.id}
        if heir is not None:
            customer.owner_id = heir.id
            customer.claimed_at = now
            await session.execute(
                table_of(Collaborator).delete().where(
                    Collaborator.customer_id == customer.id, Collaborator.member_id == heir.id
                )
            )
        else:
            customer.owner_id = None
            customer.released_by_id = member.id
            customer.released_at = now
        after = {"owner": heir.id if heir else None, "reason": reason, "departed": member.user_id}
        await store.audit(action, "customer", customer.id, before, after, now)
    return TeamHandover(team=team, departed=member, heir=heir, customers=owned)


async def remove_from_team(store: Store, member: Member, now: datetime) -> TeamHandover | None:
    """移除: `member` leaves the bound team; their customers there go to the lead or the pool.

    Their collaborations on the team's customers end too. None when they were not in the team.
    """
    session = store.session
    if not await store.leave_team(member, now):
        return None
    owned = list(
        (
            await session.execute(
                select(Customer)
                .where(
                    Customer.org_id == store.org.id, Customer.team_id == store.team.id, Customer.owner_id == member.id
                )
                .order_by(Customer.id)
                .with_for_update()
            )
        ).scalars()
    )
    handover = await hand_over_in_team(store, member, owned, now, action="remove_member", reason="移出团队")
    team_customers = select(Customer.id).where(Customer.team_id == store.team.id).scalar_subquery()
    await session.execute(
        table_of(Collaborator).delete().where(
            Collaborator.member_id == member.id, Collaborator.customer_id.in_(team_customers)
        )
    )
    return handover


async def hand_over_departed(
    store: Store, platform: str, corp_key: str | None, user_id: str, now: datetime
) -> list[TeamHandover]:
    """Move the departed member's customers to each team's lead or pool; returns one entry per team.

    `corp_key` None means "any organisation of this platform" (an internal app serves one corp, and
    some event payloads carry no corp id). The store is left bound to the last team it touched.
    """
    session = store.session
    query = (
        select(Member, Organisation)
        .join(Organisation, Organisation.id == Member.org_id)
        .where(Organisation.platform == platform, Member.user_id == user_id)
    )
    if corp_key:
        query = query.where(Organisation.corp_key == corp_key)
    handovers: list[TeamHandover] = []
    for member, org in (await session.execute(query)).all():
        customers = list(
            (
                await session.execute(
                    select(Customer)
                    .where(Customer.org_id == org.id, Customer.owner_id == member.id)
                    .order_by(Customer.team_id, Customer.id)
                    .with_for_update()
                )
            ).scalars()
        )
        by_team: dict[int, list[Customer]] = {}
        for customer in customers:
            by_team.setdefault(customer.team_id, []).append(customer)
        for team_id, owned in by_team.items():
            team = (await session.execute(select(Team).where(Team.id == team_id))).scalar_one()
            store.bind_team(org, team)
            handovers.append(await hand_over_in_team(store, member, owned, now, action="offboard", reason="离职继承"))
        await session.execute(
            table_of(Collaborator).delete().where(Collaborator.member_id == member.id)
        )
        if member.active:
            member.active = False
            if not by_team:
                # Still leave a trace of the departure for the organisation.
                first = select(Team).where(Team.org_id == org.id).order_by(Team.id).limit(1)
                any_team = (await session.execute(first)).scalar_one_or_none()
                if any_team is not None:
                    store.bind_team(org, any_team)
                    await store.audit("offboard", "member", member.id, {"active": True}, {"active": False}, now)
    return handovers
