"""Follow-ups (跟进): the hottest write — a follow-up row, the customer's changed columns, the audit row.

All three are prebuilt Core statements: no ORM object to track, no flush of the whole session, no
RETURNING of an id nobody reads.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Update, bindparam, insert, update
from sqlalchemy.orm.attributes import set_committed_value

from storage.models import Customer, FollowUp
from storage.scope import StoreBase
from storage.sql import table_of


def _tracked(customer: Customer) -> dict[str, Any]:
    """What the audit row records of a customer before and after a follow-up."""
    return {
        "stage": customer.stage,
        "amount_fen": customer.amount_fen,
        "next_followup_on": customer.next_followup_on.isoformat() if customer.next_followup_on else None,
        "status": customer.status,
    }


class FollowUpQueries(StoreBase):
    async def add_followup(
        self,
        customer: Customer,
        content: str,
        now: datetime,
        *,
        stage: str | None = None,
        amount_fen: int | None = None,
        next_on: date | None = None,
        status: str | None = None,
    ) -> None:
        before = _tracked(customer)
        # A prebuilt Core INSERT (the hottest write): no ORM object, no flush, no RETURNING of the id.
        await self.session.execute(
            _FOLLOWUP_INSERT,
            {
                "org_id": self.org.id,
                "team_id": self.team.id,
                "customer_id": customer.id,
                "author_id": self.actor.id,
                "content": content,
                "stage_before": customer.stage,
                "stage_after": stage if stage and stage != customer.stage else None,
                "amount_fen": amount_fen,
                "next_on": next_on,
                "created_at": now,
            },
        )
        changes: dict[str, Any] = {}
        if stage:
            changes["stage"] = stage
        if amount_fen is not None:
            changes["amount_fen"] = amount_fen
        if next_on is not None:
            changes["next_followup_on"] = next_on
        if status:
            changes["status"] = status
            changes["closed_at"] = now if status in ("won", "lost") else None
        changes["last_activity_at"] = now
        # A Core UPDATE of just these columns (what the unit of work would write, without a flush of
        # the whole session); the loaded object is told the new values as already stored.
        params = {"customer_id": customer.id, **{f"new_{key}": value for key, value in changes.items()}}
        await self.session.execute(_customer_update(tuple(changes)), params)
        for key, value in changes.items():
            set_committed_value(customer, key, value)
        await self.audit("followup", "customer", customer.id, before, _tracked(customer), now)


_FOLLOWUP_INSERT = insert(table_of(FollowUp))
_CUSTOMER_UPDATES: dict[tuple[str, ...], Update] = {}


def _customer_update(columns: tuple[str, ...]) -> Update:
    """UPDATE customers SET <columns> WHERE id = :customer_id, built once per set of columns."""
    stmt = _CUSTOMER_UPDATES.get(columns)
    if stmt is None:
        table = table_of(Customer)
        stmt = (
            update(table)
            .where(table.c.id == bindparam("customer_id"))
            .values({name: bindparam(f"new_{name}", type_=table.c[name].type) for name in columns})
        )
        _CUSTOMER_UPDATES[columns] = stmt
    return stmt
