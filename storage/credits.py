"""Credit for a win (业绩分成): who is credited how much, written with the win's event.

A win's credit rows sum exactly to the won amount — the split is by whole weights (60/40, or 1 each
for an even split) and the fen that do not divide go by largest remainder — so the team's total and
the sum over its members always agree. An un-win writes the rows of the win it undoes negated: a
period's credit is then a signed sum, and a closed period never changes afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select

from storage.models import DealCredit, DealEvent
from storage.scope import StoreBase
from storage.sql import table_of

Split = Sequence[tuple[int, int]]
"""(member id, whole weight) pairs: ((张三, 60), (李四, 40)), or ((owner, 1), (collaborator, 1))."""


def split_fen(amount_fen: int, weights: Sequence[int]) -> list[int]:
    """`amount_fen` shared by `weights`, in whole fen summing exactly to it (largest remainder; a tie
    goes to the earlier weight, the owner's when the owner comes first)."""
    total = sum(weights)
    if total <= 0:
        raise ValueError("weights must add up to more than zero")
    exact = [amount_fen * w for w in weights]
    parts = [e // total for e in exact]
    left = amount_fen - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] % total), i))
    for i in order[:left]:
        parts[i] += 1
    return parts


def share_bp(weights: Sequence[int]) -> list[int]:
    """Weights as basis points of the whole (6000 = 60%), summing to 10000 the same way."""
    return split_fen(10000, weights)


class CreditQueries(StoreBase):
    async def credit_win(self, event_id: int, deal_id: int, team_id: int, amount: int | None, split: Split,
                         now: datetime) -> None:
        """The credit rows of one `won` event: `split` shares its amount (none without a member)."""
        if not split:
            return
        members = [m for m, _ in split]
        weights = [w for _, w in split]
        fens = split_fen(amount or 0, weights)
        rows = [
            self._credit_row(event_id, deal_id, team_id, member, fen, bp, now)
            for member, fen, bp in zip(members, fens, share_bp(weights), strict=True)
        ]
        await self.session.execute(_CREDIT_INSERT, rows)

    async def last_win(self, deal_id: int) -> tuple[int, int | None, int | None] | None:
        """(event id, amount, owner credited) of the deal's latest `won` event: what an un-win undoes."""
        row = (
            await self.session.execute(
                select(DealEvent.id, DealEvent.amount_fen, DealEvent.owner_id)
                .where(DealEvent.deal_id == deal_id, DealEvent.kind == "won")
                .order_by(DealEvent.created_at.desc(), DealEvent.id.desc())
                .limit(1)
            )
        ).first()
        return (row[0], row[1], row[2]) if row else None

    async def uncredit_win(self, won_event_id: int, event_id: int, now: datetime) -> None:
        """The rows of the undone win (`won_event_id`) again, negated, under the un-win's event."""
        rows = await self.session.execute(
            select(DealCredit.deal_id, DealCredit.team_id, DealCredit.member_id, DealCredit.amount_fen,
                   DealCredit.share_bp)
            .where(DealCredit.event_id == won_event_id)
            .order_by(DealCredit.id)
        )
        negated = [
            self._credit_row(event_id, deal_id, team_id, member, -fen, bp, now)
            for deal_id, team_id, member, fen, bp in rows.all()
        ]
        if negated:
            await self.session.execute(_CREDIT_INSERT, negated)

    def _credit_row(self, event_id: int, deal_id: int, team_id: int, member_id: int, fen: int, bp: int,
                    now: datetime) -> dict[str, object]:
        return {
            "org_id": self.org.id, "team_id": team_id, "deal_id": deal_id, "event_id": event_id,
            "member_id": member_id, "amount_fen": fen, "share_bp": bp, "created_at": now,
        }


_CREDIT_INSERT = insert(table_of(DealCredit))
