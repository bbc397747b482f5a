"""Follow-ups (跟进): the hottest write — a follow-up row, the customer's and its deal's changed
columns, the deal's events and the audit row.

All are prebuilt Core statements: no ORM object to track, no flush of the whole session, no
RETURNING of an id nobody reads. A follow-up with no deal (a customer whose deals are all closed)
is a note on the customer: it moves nothing but the customer's activity and next step.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Update, bindparam, insert, update
from sqlalchemy.orm.attributes import set_committed_value

from storage import deferred
from storage.changes import KEY_COLUMNS, values_only
from storage.credits import Split
from storage.deals import DealQueries
from storage.deferred import deferral_safe
from storage.models import Customer, Deal, FollowUp
from storage.sql import table_of

# status change → the event it writes
_STATUS_EVENTS = {"won": "won", "lost": "lost"}


def _tracked(customer: Customer, deal: Deal | None) -> dict[str, Any]:
    """What the audit row records of a customer and its deal before and after a follow-up."""
    tracked: dict[str, Any] = {
        "next_followup_on": customer.next_followup_on.isoformat() if customer.next_followup_on else None,
    }
    if deal is not None:
        tracked.update(deal=deal.id, stage=deal.stage, amount_fen=deal.amount_fen, status=deal.status)
        if deal.expected_close_on is not None:
            tracked["expected_close_on"] = deal.expected_close_on.isoformat()
    return tracked


class FollowUpQueries(DealQueries):
    async def add_followup(
        self,
        customer: Customer,
        content: str,
        now: datetime,
        *,
        deal: Deal | None = None,
        stage: str | None = None,
        amount_fen: int | None = None,
        next_on: date | None = None,
        status: str | None = None,
        lost_reason: str | None = None,
        split: Split | None = None,
        expected_on: date | None = None,
    ) -> None:
        """Record a follow-up; stage, amount and status (won / lost / open again) change `deal`; a win
        credits `split` (storage.credits; the owner in full without one); `expected_on` moves the deal's
        expected close date (预计, what the month's forecast reads)."""
        before = _tracked(customer, deal)
        old_stage = deal.stage if deal else None
        # A prebuilt Core INSERT (the hottest write): no ORM object, no flush, no RETURNING of the id;
        # deferred to the end of the unit of work with the audit row (storage.deferred).
        deferred.defer(
            self.session,
            _FOLLOWUP_INSERT,
            {
                "org_id": self.org.id,
                "team_id": self.team.id,
                "customer_id": customer.id,
                "deal_id": deal.id if deal else None,
                "author_id": self.actor.id,
                "content": content,
                "stage_before": old_stage,
                "stage_after": stage if deal and stage and stage != old_stage else None,
                "amount_fen": amount_fen,
                "next_on": next_on,
                "created_at": now,
            },
        )
        changes: dict[str, Any] = {"last_activity_at": now}
        if next_on is not None:
            changes["next_followup_on"] = next_on
        await _apply(self, _CUSTOMER_UPDATES, Customer, customer, changes)
        if deal is not None:
            await self._move_deal(customer, deal, now, stage, amount_fen, status, lost_reason, split)
            if expected_on is not None and expected_on != deal.expected_close_on:
                await _apply(self, _DEAL_UPDATES, Deal, deal, {"expected_close_on": expected_on})
        await self.audit("followup", "customer", customer.id, before, _tracked(customer, deal), now)

    async def _move_deal(
        self,
        customer: Customer,
        deal: Deal,
        now: datetime,
        stage: str | None,
        amount_fen: int | None,
        status: str | None,
        lost_reason: str | None,
        split: Split | None,
    ) -> None:
        old_stage, old_amount, old_status = deal.stage, deal.amount_fen, deal.status
        changes: dict[str, Any] = {}
        if stage and stage != old_stage:
            changes["stage"] = stage
        if amount_fen is not None and amount_fen != old_amount:
            changes["amount_fen"] = amount_fen
        if status and status != old_status:
            changes["status"] = status
            changes["closed_at"] = now if status in _STATUS_EVENTS else None
            if status == "lost":
                changes["lost_reason"] = lost_reason
        if not changes:
            return
        await _apply(self, _DEAL_UPDATES, Deal, deal, changes)
        events: list[tuple[str, str | None, str | None, int | None]] = []
        if "amount_fen" in changes:
            events.append(("amount", None, None, amount_fen))
        if "status" in changes:
            # An un-win carries the amount that was won (deal_events looks the win up), so a period's
            # wins minus un-wins nets out.
            kind = _STATUS_EVENTS.get(status or "", "unwon" if old_status == "won" else "reopened")
            amount = old_amount if kind == "unwon" else deal.amount_fen
            events.append((kind, old_stage, deal.stage, amount))
        elif "stage" in changes:
            events.append(("stage", old_stage, deal.stage, deal.amount_fen))
        await self.deal_events(customer, deal, events, now, split=split)


async def _apply(
    store: FollowUpQueries, cache: dict[tuple[str, ...], Update], model: type, row: Any, changes: dict[str, Any]
) -> None:
    """A Core UPDATE of just these columns (what the unit of work would write, without a flush of the
    whole session), waiting with the follow-up row for the end of the unit of work (storage.deferred:
    a statement that reads the table writes it first); the loaded object is told the new values as
    already stored, so the objects handed out meanwhile read as a fresh SELECT would."""
    params = {"row_id": row.id, **{f"new_{key}": value for key, value in changes.items()}}
    deferred.defer(store.session, _update(cache, model, tuple(changes)), params)
    for key, value in changes.items():
        set_committed_value(row, key, value)


_FOLLOWUP_INSERT = insert(table_of(FollowUp))
_CUSTOMER_UPDATES: dict[tuple[str, ...], Update] = {}
_DEAL_UPDATES: dict[tuple[str, ...], Update] = {}


def _update(cache: dict[tuple[str, ...], Update], model: type, columns: tuple[str, ...]) -> Update:
    """UPDATE <table> SET <columns> WHERE id = :row_id, built once per set of columns."""
    stmt = cache.get(columns)
    if stmt is None:
        table = table_of(model)
        stmt = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({name: bindparam(f"new_{name}", type_=table.c[name].type) for name in columns})
        )
        if not set(columns) & set(KEY_COLUMNS.get(table.name, ())):
            values_only(stmt)
        cache[columns] = deferral_safe(stmt)
    return stmt
# Statements that cannot see the rows a unit of work defers (storage.deferred).
for _safe in (_FOLLOWUP_INSERT,):
    deferral_safe(_safe)
