"""Deals (商机): a customer's open, won and lost deals, opening one, and the event trail.

Every change to a deal is a `DealEvent` row written in the same transaction as the change, because
reports are sums of events in a period (a win, a loss, an un-win carry the amount at that moment),
never sums of the deals' current values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Exists, and_, bindparam, exists, insert, select

from storage import changes
from storage.credits import CreditQueries, Split
from storage.deferred import deferral_safe
from storage.models import Customer, Deal, DealEvent
from storage.scope import DEALS
from storage.sql import table_of

OPEN = "open"


def open_deal_exists() -> Exists:
    """EXISTS an open deal of the customer in the enclosing query: what "跟进中" means for a customer.

    Pool rules (reclaim, the per-rep cap) and the lists (我的, 看板, reminders) count a customer while
    something is being sold to it; a customer whose deals are all won or lost rests with its owner.
    """
    return exists().where(Deal.customer_id == Customer.id, Deal.status == OPEN)


class DealQueries(CreditQueries):
    async def open_deals(self, customer: Customer) -> list[Deal]:
        """The customer's open deals, oldest first (the first is the one a single-deal customer has).

        Free when they came with the customer (`CustomerQueries.customer_by_norm`) and nothing was
        written since."""
        read = self.open_deals_read.get(customer.id)
        if read is not None and not changes.changed_since(self.session.sync_session, DEALS, read[0]):
            return list(read[1])
        rows = await self.session.execute(_OPEN_DEALS, {"org_id": self.org.id, "customer_id": customer.id})
        return list(rows.scalars().all())

    async def deals_of(self, customer: Customer) -> list[Deal]:
        """Every deal of the customer: open ones first, then the closed ones, latest first."""
        rows = await self.session.execute(
            select(Deal)
            .where(Deal.org_id == self.org.id, Deal.customer_id == customer.id)
            .order_by(Deal.status != OPEN, Deal.closed_at.desc().nulls_last(), Deal.id.desc())
        )
        return list(rows.scalars().all())

    async def open_deals_by_customer(self, customer_ids: Sequence[int]) -> dict[int, list[Deal]]:
        """{customer id: open deals, oldest first} for a list of customers, in one query."""
        if not customer_ids:
            return {}
        rows = await self.session.execute(_OPEN_DEALS_OF, {"org_id": self.org.id, "ids": sorted(set(customer_ids))})
        found: dict[int, list[Deal]] = {}
        for deal in rows.scalars().all():
            found.setdefault(deal.customer_id, []).append(deal)
        return found

    async def latest_deals_by_customer(self, customer_ids: Sequence[int]) -> dict[int, Deal]:
        """{customer id: the deal that stands for it}: its newest open deal, else its latest closed one."""
        if not customer_ids:
            return {}
        rows = await self.session.execute(
            select(Deal)
            .where(Deal.org_id == self.org.id, Deal.customer_id.in_(set(customer_ids)))
            .order_by(Deal.customer_id, Deal.status == OPEN, Deal.closed_at.nulls_first(), Deal.id)
        )
        found: dict[int, Deal] = {}
        for deal in rows.scalars().all():  # ascending: the last one per customer is the one that stands
            found[deal.customer_id] = deal
        return found

    async def count_deals(self, customer: Customer) -> int:
        rows = await self.session.execute(select(Deal.id).where(Deal.customer_id == customer.id))
        return len(rows.all())

    async def open_deal(
        self,
        customer: Customer,
        name: str,
        now: datetime,
        *,
        stage: str = "线索",
        amount_fen: int | None = None,
        expected_close_on: date | None = None,
        audited: bool = True,
    ) -> Deal:
        """Open a deal on the customer (a first one at a claim, 复购 or 二期 later) and record it.

        `audited` False when the caller's own audit row already names the deal (a claim, an import).
        """
        deal = Deal(
            org_id=self.org.id,
            team_id=customer.team_id,
            customer_id=customer.id,
            name=name[:64],
            stage=stage,
            amount_fen=amount_fen,
            expected_close_on=expected_close_on,
            status=OPEN,
            opened_by_id=self.scope.actor.id if self.scope.actor else None,
            created_at=now,
        )
        self.session.add(deal)
        await self.session.flush()
        await self.deal_events(customer, deal, [("opened", None, stage, amount_fen)], now)
        if audited:
            after = {"customer": customer.id, "name": deal.name, "stage": stage, "amount_fen": amount_fen}
            if expected_close_on:
                after["expected_close_on"] = expected_close_on.isoformat()
            await self.audit("deal_open", "deal", deal.id, None, after, now)
        return deal

    async def deal_events(
        self,
        customer: Customer,
        deal: Deal,
        events: Sequence[tuple[str, str | None, str | None, int | None]],
        now: datetime,
        *,
        split: Split | None = None,
    ) -> None:
        """Write (kind, stage before, stage after, amount at that moment) events of one deal at once.

        A `won` event credits `split` (the owner in full without one, storage.credits); an `unwon`
        carries the amount and the owner of the win it undoes and writes that win's credit negated.
        """
        if not events:
            return
        scope = self.scope
        base: dict[str, Any] = {
            "org_id": scope.org.id,
            "team_id": deal.team_id,
            "deal_id": deal.id,
            "customer_id": customer.id,
            "owner_id": customer.owner_id,
            "actor_id": scope.actor.id if scope.actor else None,
            "msg_id": scope.msg_id,
            "created_at": now,
        }
        rows = [
            {**base, "kind": kind, "stage_before": before, "stage_after": after, "amount_fen": amount}
            for kind, before, after, amount in events
        ]
        plain = [row for row in rows if row["kind"] not in ("won", "unwon")]
        if plain:
            await self.session.execute(_EVENT_INSERT, plain)
        for row in rows:
            if row["kind"] == "won":
                event_id = await self._event_id(row)
                owner = ((customer.owner_id, 1),) if customer.owner_id is not None else ()
                await self.credit_win(event_id, deal.id, deal.team_id, row["amount_fen"], split or owner, now)
            elif row["kind"] == "unwon":
                undone = await self.last_win(deal.id)
                if undone is not None:  # the win's amount, and its owner: whose win count it takes back
                    row["amount_fen"], row["owner_id"] = undone[1], undone[2]
                event_id = await self._event_id(row)
                if undone is not None:
                    await self.uncredit_win(undone[0], event_id, now)

    async def _event_id(self, row: dict[str, Any]) -> int:
        return int((await self.session.execute(_EVENT_INSERT.returning(_EVENT_ID), row)).scalar_one())


def deal_state(deals: Sequence[Deal]) -> str:
    """open when any deal is open, else the latest closed deal's status (won/lost); "" without deals."""
    if any(d.status == OPEN for d in deals):
        return OPEN
    closed = [d for d in deals if d.closed_at is not None]
    if closed:
        return max(closed, key=lambda d: (d.closed_at, d.id)).status
    return deals[-1].status if deals else ""


_OPEN_DEALS = (
    select(Deal)
    .where(
        and_(
            Deal.org_id == bindparam("org_id"),
            Deal.customer_id == bindparam("customer_id"),
            Deal.status == OPEN,
        )
    )
    .order_by(Deal.id)
)
_OPEN_DEALS_OF = (  # 我的 lists each customer with its open deals
    select(Deal)
    .where(Deal.org_id == bindparam("org_id"), Deal.customer_id.in_(bindparam("ids", expanding=True)),
           Deal.status == OPEN)
    .order_by(Deal.customer_id, Deal.id)
)
_EVENT_INSERT = insert(table_of(DealEvent))
_EVENT_ID = table_of(DealEvent).c.id
# Statements that cannot see the rows a unit of work defers (storage.deferred).
for _safe in (_OPEN_DEALS, _OPEN_DEALS_OF, _EVENT_INSERT):
    deferral_safe(_safe)
