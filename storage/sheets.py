"""Rows for spreadsheets: reading a team's data for export and writing imported customers.

Kept apart from `Store` because only the command-line import/export uses it; like `Store`, every query
filters on the bound organisation and team.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select

from storage.customers import FIRST_DEAL
from storage.models import Collaborator, Customer, Deal, FollowUp, Member
from storage.store import Store


async def customers_for_export(
    store: Store,
) -> list[tuple[Customer, Deal | None, Member | None, list[Member]]]:
    """Every customer of the team (pool, active, won, lost), oldest first, with the deal that stands for
    it (its newest open deal, else its latest closed one), owner and collaborators."""
    customers = list(
        (
            await store.session.execute(
                select(Customer)
                .where(Customer.org_id == store.org.id, Customer.team_id == store.team.id)
                .order_by(Customer.created_at, Customer.id)
            )
        ).scalars().all()
    )
    owners = await store.members_by_id([c.owner_id for c in customers if c.owner_id])
    collaborators: dict[int, list[Member]] = {}
    if customers:
        rows = await store.session.execute(
            select(Collaborator.customer_id, Member)
            .join(Member, Member.id == Collaborator.member_id)
            .where(Collaborator.customer_id.in_([c.id for c in customers]), Member.org_id == store.org.id)
            .order_by(Collaborator.added_at)
        )
        for customer_id, member in rows.all():
            collaborators.setdefault(customer_id, []).append(member)
    deals = await store.latest_deals_by_customer([c.id for c in customers])
    return [
        (c, deals.get(c.id), owners.get(c.owner_id) if c.owner_id else None, collaborators.get(c.id, []))
        for c in customers
    ]


async def followups_for_export(store: Store) -> list[tuple[FollowUp, Customer, Member]]:
    rows = await store.session.execute(
        select(FollowUp, Customer, Member)
        .join(Customer, Customer.id == FollowUp.customer_id)
        .join(Member, Member.id == FollowUp.author_id)
        .where(FollowUp.org_id == store.org.id, FollowUp.team_id == store.team.id)
        .order_by(FollowUp.created_at, FollowUp.id)
    )
    return [(f, c, m) for f, c, m in rows.all()]


async def insert_imported_customer(
    store: Store,
    *,
    name: str,
    norm_name: str,
    owner: Member | None,
    stage: str,
    status: str,
    amount_fen: int | None,
    note: str | None,
    last_activity_at: datetime,
    next_followup_on: date | None,
    now: datetime,
    claimed_at: datetime | None = None,
) -> Customer | None:
    """Insert one customer with its first deal (stage, amount, status of the sheet); None when the team
    or the organisation already has that normalised name (the database decides)."""
    created = await store.insert_if_absent(
        Customer,
        {
            "org_id": store.org.id,
            "team_id": store.team.id,
            "name": name[:200],
            "norm_name": norm_name[:200],
            "owner_id": owner.id if owner else None,
            "note": note,
            "claimed_at": (claimed_at or now) if owner else None,
            "last_activity_at": last_activity_at,
            "next_followup_on": next_followup_on,
            "created_at": now,
        },
        (),  # any unique key: the organisation's name or the team's
    )
    if not created:
        return None
    customer = await store.customer_by_norm(norm_name[:200])
    assert customer is not None
    deal = await store.open_deal(customer, FIRST_DEAL, now, stage=stage, amount_fen=amount_fen, audited=False)
    if status in ("won", "lost"):
        # Closed in the sheet: the deal closes at the sheet's last activity, written as its event too.
        deal.status, deal.closed_at = status, last_activity_at
        await store.deal_events(customer, deal, [(status, None, stage, amount_fen)], last_activity_at)
    after = {"name": customer.name, "owner": owner.id if owner else None, "stage": stage, "status": status}
    await store.audit("import", "customer", customer.id, None, {**after, "deal": deal.id}, now)
    return customer
