"""What the web board's pages read that no chat report does: opening a token's scope, the customer list
with its filters, and one customer's page.

Period numbers (wins, funnel, trend, goals) are not here: the board takes them from the same modules as
the chat reports, so page and chat always agree. Everything here is scoped to the token's team.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, or_, select

from storage.models import Customer, Deal, Member, Membership, Organisation, Team
from storage.scope import Scope
from storage.sql import escape_like
from storage.store import Store

PAGE_SIZE = 50


async def open_scope(store: Store, org_id: int, team_id: int, member_id: int) -> bool:
    """Bind the store to a token's team (read-only: the requester as actor). False when the team is not the
    organisation's, or the requester has left it — a link outlives neither."""
    row = (
        await store.session.execute(
            select(Organisation, Team, Member, Membership)
            .join(Team, Team.org_id == Organisation.id)
            .join(Membership, Membership.team_id == Team.id)
            .join(Member, Member.id == Membership.member_id)
            .where(Organisation.id == org_id, Team.id == team_id, Member.id == member_id, Member.org_id == org_id,
                   Membership.left_at.is_(None))
        )
    ).first()
    if row is None:
        return False
    org, team, member, membership = row
    store._scope = Scope(org=org, team=team, actor=member, role=membership.role)  # type: ignore[arg-type]
    return True


@dataclass(frozen=True)
class CustomerFilter:
    """The customer list's filters: owner (member id, 0 = the pool), deal stage (an open stage, 赢单 or 输单),
    idle for at least `idle_days`, and a name search."""

    owner_id: int | None = None
    stage: str | None = None
    idle_days: int | None = None
    query: str | None = None
    page: int = 1


@dataclass(frozen=True)
class CustomerRow:
    customer: Customer
    owner: Member | None
    deals: list[Deal]


async def team_customers(store: Store, wanted: CustomerFilter, now: datetime) -> tuple[list[CustomerRow], int]:
    """One page of the team's customers matching the filters, most recently active first, and how many match."""
    where = [Customer.org_id == store.org.id, Customer.team_id == store.team.id]
    if wanted.owner_id == 0:
        where.append(Customer.owner_id.is_(None))
    elif wanted.owner_id is not None:
        where.append(Customer.owner_id == wanted.owner_id)
    if wanted.stage in ("赢单", "输单"):
        status = "won" if wanted.stage == "赢单" else "lost"
        where.append(exists().where(Deal.customer_id == Customer.id, Deal.status == status))
    elif wanted.stage:
        where.append(exists().where(Deal.customer_id == Customer.id, Deal.status == "open", Deal.stage == wanted.stage))
    if wanted.idle_days is not None:
        where.append(Customer.last_activity_at < now - timedelta(days=wanted.idle_days))
    if wanted.query:
        pattern = f"%{escape_like(wanted.query)}%"
        where.append(or_(Customer.name.ilike(pattern, escape="\\"), Customer.norm_name.ilike(pattern, escape="\\")))
    total = int(await store.session.scalar(select(func.count()).select_from(Customer).where(*where)) or 0)
    rows = await store.session.execute(
        select(Customer, Member)
        .outerjoin(Member, Member.id == Customer.owner_id)
        .where(*where)
        .order_by(Customer.last_activity_at.desc(), Customer.id.desc())
        .limit(PAGE_SIZE)
        .offset((max(wanted.page, 1) - 1) * PAGE_SIZE)
    )
    found = rows.all()
    deals = await _deals_of([c.id for c, _ in found], store)
    return [CustomerRow(c, m, deals.get(c.id, [])) for c, m in found], total


async def _deals_of(customer_ids: list[int], store: Store) -> dict[int, list[Deal]]:
    if not customer_ids:
        return {}
    rows = await store.session.execute(
        select(Deal).where(Deal.org_id == store.org.id, Deal.customer_id.in_(customer_ids)).order_by(Deal.id)
    )
    out: dict[int, list[Deal]] = {}
    for deal in rows.scalars().all():
        out.setdefault(deal.customer_id, []).append(deal)
    return out


async def team_customer(store: Store, customer_id: int) -> Customer | None:
    """The team's customer with this id, or None (another team's customer is not on this board)."""
    return (
        await store.session.execute(
            select(Customer).where(
                Customer.id == customer_id, Customer.org_id == store.org.id, Customer.team_id == store.team.id
            )
        )
    ).scalar_one_or_none()


async def team_members(store: Store) -> list[Member]:
    """The team's current members by name, for the owner filter."""
    rows = await store.session.execute(
        select(Member)
        .join(Membership, Membership.member_id == Member.id)
        .where(Membership.team_id == store.team.id, Membership.left_at.is_(None))
        .order_by(Member.name, Member.id)
    )
    return list(rows.scalars().all())
