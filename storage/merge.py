"""合并: two rows of one company become one — everything that belongs to the duplicate moves over.

Customers that two teams both held before names were organisation-wide are kept as two rows, the
younger marked `duplicate_of_id`; a lead merges them. The duplicate's deals (with their events),
follow-ups, help requests, points, collaborators (and its owner, as a collaborator, so they still see
it) move onto the kept customer, and the duplicate row is deleted — one audit row records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, delete, select, update

from storage.models import (
    Collaborator,
    Contact,
    Customer,
    Deal,
    DealEvent,
    FollowUp,
    HelpRequest,
    Member,
    PointsEntry,
)
from storage.sql import table_of
from storage.store import Store

# Every table whose rows belong to a customer through `customer_id` and follow it into the merge.
MOVED_WITH_THE_CUSTOMER: tuple[Column[int], ...] = (
    table_of(Contact).c.customer_id,
    table_of(Deal).c.customer_id,
    table_of(DealEvent).c.customer_id,
    table_of(FollowUp).c.customer_id,
    table_of(HelpRequest).c.customer_id,
    table_of(PointsEntry).c.customer_id,
)


@dataclass
class MergeResult:
    deals: int
    followups: int
    new_collaborators: list[Member]


async def merge_customers(store: Store, source: Customer, target: Customer, now: datetime) -> MergeResult:
    """Move everything of `source` onto `target` and delete `source` (the caller's transaction)."""
    session = store.session
    counts: dict[str, int] = {}
    for column in (table_of(Deal).c.customer_id, table_of(FollowUp).c.customer_id):
        found = await session.execute(select(column.table.c.id).where(column == source.id))
        counts[column.table.name] = len(found.all())
    await _rename_clashing_deals(store, source, target)
    for column in MOVED_WITH_THE_CUSTOMER:
        await session.execute(update(column.table).where(column == source.id).values({column.name: target.id}))
    # The duplicate's owner and collaborators keep working on the customer, as collaborators.
    people = {m.id: m for m in await store.collaborators(source)}
    source_owner = await store.owner_of(source)
    if source_owner is not None:
        people[source_owner.id] = source_owner
    people.pop(target.owner_id or 0, None)
    added = [m for m in people.values() if await store.add_collaborator(target, m, now)]
    await session.execute(delete(Collaborator).where(Collaborator.customer_id == source.id))
    await session.execute(
        update(Customer).where(Customer.duplicate_of_id == source.id).values(duplicate_of_id=target.id)
    )
    if source.last_activity_at > target.last_activity_at:
        target.last_activity_at = source.last_activity_at
    if target.next_followup_on is None:
        target.next_followup_on = source.next_followup_on
    if source.note and source.note != target.note:
        target.note = f"{target.note}\n{source.note}" if target.note else source.note
    before = {"id": source.id, "name": source.name, "team": source.team_id, "owner": source.owner_id}
    after = {"into": target.id, "deals": counts["deals"], "followups": counts["followups"]}
    await store.audit("merge", "customer", target.id, before, after, now)
    await session.delete(source)
    await session.flush()
    return MergeResult(counts["deals"], counts["followups"], added)


async def _rename_clashing_deals(store: Store, source: Customer, target: Customer) -> None:
    """Deals are named within a customer (跟进 华为 二期): a moved deal whose name the kept customer
    already uses gets its team's name after it."""
    taken = {d.name for d in await store.deals_of(target)}
    team = (await store.team_of(source)).name.replace(" ", "")
    for deal in await store.deals_of(source):
        if deal.name in taken:
            deal.name = f"{deal.name}（{team}）"[:64]
        taken.add(deal.name)
