"""Reads made once for a whole batch of commands (bot.router group commit), used by each command instead
of a statement of its own while they still hold (storage.changes).

Under load several messages share a transaction, and most of them start with the same read: the team's
customer a 跟进 names, the rep's list for 我的. Asked for all of them at once, that is one statement per
batch instead of one per message. A command takes an entry only when nothing that could change its
answer was written since (earlier commands of the batch included); otherwise it reads as it always did.
Entries hold identity-mapped objects, the very ones a fresh SELECT in this transaction would return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, and_, bindparam, select, true, tuple_

from storage import changes
from storage.customer_search import search_many, visible_names_many
from storage.deals import OPEN
from storage.deferred import deferral_safe
from storage.models import Collaborator, Customer, Deal
from storage.scope import StoreBase
from storage.sql import unnest_rows, unnest_table

OWN_TABLES = ("customers", "deals")
SEARCH_TABLES = ("customers", "collaborators")
MINE_TABLES = ("customers", "deals", "collaborators")
MyCustomers = tuple[list[Customer], list[Customer], dict[int, list[Deal]]]


@dataclass
class Prefetched:
    """One read made for the batch, and where the tables it depends on stood when it was made."""

    value: Any
    tables: tuple[str, ...]
    mark: changes.Mark
    any_column: bool = False


class PrefetchQueries(StoreBase):
    def prefetched_read(self, key: tuple[Any, ...]) -> Any:
        """The batch's read for `key` while it holds, else `MISSING` (and it is forgotten)."""
        entry: Prefetched | None = self.batch_reads.get(key)
        if entry is None:
            return MISSING
        session = self.session.sync_session
        if changes.changed_since(session, entry.tables, entry.mark, any_column=entry.any_column):
            del self.batch_reads[key]
            return MISSING
        return entry.value

    async def prefetch_customers(self, org_id: int, wanted: Sequence[tuple[int, int, str, str]]) -> None:
        """The customers the batch's commands name, `(team id, member id, normalised name, as written)` each:
        the team's own with their open deals, in one statement (a name the team does not have is kept as
        None: also an answer); for those the team does not have, what `find_customer` searches next (one
        statement) and, where that finds nothing, the names "你是不是指" picks from (one more)."""
        pairs = sorted({(team_id, norm) for team_id, _, norm, _ in wanted if norm})
        if not pairs:
            return
        await self._prefetch_own(org_id, pairs)
        misses = sorted({(t, m, norm, raw) for t, m, norm, raw in wanted
                         if norm and self.batch_reads[("own", org_id, t, norm)].value is None})
        if misses:
            await self._prefetch_searches(org_id, misses)

    async def _prefetch_own(self, org_id: int, pairs: list[tuple[int, str]]) -> None:
        mark = changes.mark(self.session.sync_session, OWN_TABLES)
        found: dict[tuple[int, str], tuple[Customer, list[Deal]]] = {}
        rows = await self.session.execute(*_keyed(self.dialect, _OWN_MANY, org_id, pairs))
        for customer, deal in rows.all():
            entry = found.setdefault((customer.team_id, customer.norm_name), (customer, []))
            if deal is not None:
                entry[1].append(deal)
        for pair in pairs:
            self.batch_reads[("own", org_id, *pair)] = Prefetched(found.get(pair), OWN_TABLES, mark)


    async def _prefetch_searches(self, org_id: int, misses: list[tuple[int, int, str, str]]) -> None:
        """`search_customers` for each miss, then `all_customer_names` for those it finds nothing for."""
        mark = changes.mark(self.session.sync_session, SEARCH_TABLES)
        hits = await search_many(self.session, org_id, misses)
        for miss, found in zip(misses, hits, strict=True):
            self.batch_reads[("search", org_id, *miss)] = Prefetched(found, SEARCH_TABLES, mark)
        empty = sorted({(team_id, member_id) for (team_id, member_id, _, _), found in zip(misses, hits, strict=True)
                        if not found})
        if empty:
            for asker, names in zip(empty, await visible_names_many(self.session, org_id, empty), strict=True):
                self.batch_reads[("names", org_id, *asker)] = Prefetched(names, SEARCH_TABLES, mark)

    async def prefetch_my_customers(self, org_id: int, wanted: Sequence[tuple[int, int]]) -> None:
        """我的 of several members, `(team id, member id)` each, in two statements (storage.customers.
        my_customers reads one member's in two). Held only while nothing at all changed in those tables:
        the order depends on every date."""
        pairs = sorted(set(wanted))
        if not pairs:
            return
        mark = changes.mark(self.session.sync_session, MINE_TABLES)
        deals: dict[tuple[int, int], dict[int, list[Deal]]] = {pair: {} for pair in pairs}
        owned: dict[tuple[int, int], dict[int, Customer]] = {pair: {} for pair in pairs}
        shared: dict[int, dict[int, Customer]] = {member: {} for _, member in pairs}
        for customer, deal in (await self.session.execute(*_keyed(self.dialect, _OWNED_MANY, org_id, pairs))).all():
            key = (customer.team_id, customer.owner_id)
            if key in owned:
                owned[key].setdefault(customer.id, customer)
                deals[key].setdefault(customer.id, []).append(deal)
        members = sorted(shared)
        shared_deals: dict[int, dict[int, list[Deal]]] = {member: {} for member in members}
        for customer, deal, member in (
            await self.session.execute(_SHARED_MANY, {"org_id": org_id, "members": members})
        ).all():
            shared[member].setdefault(customer.id, customer)
            shared_deals[member].setdefault(customer.id, []).append(deal)
        for team_id, member_id in pairs:
            found = {**shared_deals[member_id], **deals[(team_id, member_id)]}
            value: MyCustomers = (list(owned[(team_id, member_id)].values()), list(shared[member_id].values()), found)
            self.batch_reads[("mine", org_id, team_id, member_id)] = Prefetched(value, MINE_TABLES, mark,
                                                                                 any_column=True)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

def _keyed(dialect: str, statements: dict[bool, Any], org_id: int, pairs: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    """The statement for `dialect` and its parameters: the pairs as an IN list (SQLite) or as two arrays
    joined in (PostgreSQL: one statement for any number of pairs; storage.sql.unnest_table)."""
    if dialect == "postgresql":
        return statements[True], {"org_id": org_id, **unnest_rows("wanted", ("a", "b"), pairs)}
    return statements[False], {"org_id": org_id, "pairs": pairs}


def _by_pairs(columns: tuple[Any, Any], build: Any) -> dict[bool, Any]:
    """`build(key condition, FROM clause)` for both dialects: customers whose `columns` are one of the pairs."""
    wanted = unnest_table("wanted", a=Integer, b=columns[1].type)
    return {
        False: deferral_safe(build(tuple_(*columns).in_(bindparam("pairs", expanding=True)), Customer)),
        True: deferral_safe(build(and_(columns[0] == wanted.c.a, columns[1] == wanted.c.b),
                                  wanted.join(Customer, true()))),
    }


_OWN_MANY = _by_pairs((Customer.team_id, Customer.norm_name), lambda key, source: (
    select(Customer, Deal)
    .select_from(source)
    .outerjoin(Deal, and_(Deal.customer_id == Customer.id, Deal.status == OPEN))
    .where(Customer.org_id == bindparam("org_id"), key)
    .order_by(Customer.id, Deal.id)
))
_OPEN = and_(Deal.customer_id == Customer.id, Deal.status == OPEN)
# storage.customers' _CUSTOMERS_OF and _SHARED_WITH for several members: the same joins and order.
_OWNED_MANY = _by_pairs((Customer.team_id, Customer.owner_id), lambda key, source: (
    select(Customer, Deal)
    .select_from(source)
    .join(Deal, _OPEN)
    .where(Customer.org_id == bindparam("org_id"), key)
    .order_by(Customer.next_followup_on.is_(None), Customer.next_followup_on, Customer.last_activity_at.desc(),
              Customer.id, Deal.id)
))
_SHARED_MANY = deferral_safe(
    select(Customer, Deal, Collaborator.member_id)
    .join(Collaborator, Collaborator.customer_id == Customer.id)
    .join(Deal, _OPEN)
    .where(Customer.org_id == bindparam("org_id"), Collaborator.member_id.in_(bindparam("members", expanding=True)))
    .order_by(Customer.next_followup_on.is_(None), Customer.next_followup_on, Customer.id, Deal.id)
)

