"""INTERIM stand-in for the ledger helper's module (branch i-ledger), written to the shared sketch so
the reports can be built and tested before it lands; replaced by i-ledger's file on merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from storage.models import AuditLog, Customer, Deal, DealEvent, FollowUp
from storage.store import Store


@dataclass
class Credit:
    fen: int = 0
    count: int = 0


@dataclass
class CreditShare:
    member_id: int | None
    fen: int
    share: float


@dataclass
class WonDeal:
    customer: str
    deal: str
    fen: int
    owner_id: int | None
    credits: list[CreditShare] = field(default_factory=list)


@dataclass
class PeriodWins:
    count: int = 0
    fen: int = 0
    by_member: dict[int, Credit] = field(default_factory=dict)
    deals: list[WonDeal] = field(default_factory=list)


@dataclass
class LostDeal:
    customer: str
    deal: str
    fen: int | None
    owner_id: int | None
    reason: str | None


@dataclass
class Activity:
    followups: int = 0
    new_customers: int = 0


@dataclass
class StageTotal:
    count: int = 0
    fen: int = 0


async def period_wins(store: Store, start: datetime, end: datetime) -> PeriodWins:
    rows = await store.session.execute(
        select(DealEvent.kind, DealEvent.deal_id, DealEvent.amount_fen, DealEvent.owner_id, Customer.name, Deal.name)
        .join(Customer, Customer.id == DealEvent.customer_id)
        .join(Deal, Deal.id == DealEvent.deal_id)
        .where(
            DealEvent.team_id == store.team.id,
            DealEvent.kind.in_(("won", "unwon")),
            DealEvent.created_at >= start,
            DealEvent.created_at < end,
        )
        .order_by(DealEvent.created_at, DealEvent.id)
    )
    wins = PeriodWins()
    listed: list[tuple[int, WonDeal]] = []
    for kind, deal_id, amount, owner_id, customer, deal in rows.all():
        sign = 1 if kind == "won" else -1
        fen = int(amount or 0)
        wins.count += sign
        wins.fen += sign * fen
        if owner_id is not None:
            credit = wins.by_member.setdefault(owner_id, Credit())
            credit.fen += sign * fen
            credit.count += sign
        if sign > 0:
            listed.append((deal_id, WonDeal(customer, deal, fen, owner_id, [CreditShare(owner_id, fen, 1.0)])))
        else:
            for i in range(len(listed) - 1, -1, -1):
                if listed[i][0] == deal_id:
                    del listed[i]
                    break
    wins.deals = [w for _, w in listed]
    return wins


async def period_losses(store: Store, start: datetime, end: datetime) -> list[LostDeal]:
    rows = await store.session.execute(
        select(Customer.name, Deal.name, DealEvent.amount_fen, DealEvent.owner_id, Deal.lost_reason)
        .join(Customer, Customer.id == DealEvent.customer_id)
        .join(Deal, Deal.id == DealEvent.deal_id)
        .where(
            DealEvent.team_id == store.team.id,
            DealEvent.kind == "lost",
            DealEvent.created_at >= start,
            DealEvent.created_at < end,
        )
        .order_by(DealEvent.created_at, DealEvent.id)
    )
    return [LostDeal(c, d, a, o, r) for c, d, a, o, r in rows.all()]


async def activity_by_member(store: Store, start: datetime, end: datetime) -> dict[int, Activity]:
    found: dict[int, Activity] = {}
    rows = await store.session.execute(
        select(FollowUp.author_id, func.count())
        .where(FollowUp.team_id == store.team.id, FollowUp.created_at >= start, FollowUp.created_at < end)
        .group_by(FollowUp.author_id)
    )
    for member_id, n in rows.all():
        found.setdefault(member_id, Activity()).followups = int(n)
    rows = await store.session.execute(
        select(AuditLog.actor_id, func.count())
        .where(
            AuditLog.team_id == store.team.id,
            AuditLog.action == "claim",
            AuditLog.created_at >= start,
            AuditLog.created_at < end,
        )
        .group_by(AuditLog.actor_id)
    )
    for member_id, n in rows.all():
        if member_id is not None:
            found.setdefault(member_id, Activity()).new_customers = int(n)
    return found


async def pipeline_at(store: Store, at: datetime) -> dict[str, StageTotal]:
    rows = await store.session.execute(
        select(DealEvent.deal_id, DealEvent.kind, DealEvent.stage_after, DealEvent.amount_fen)
        .where(DealEvent.team_id == store.team.id, DealEvent.created_at < at)
        .order_by(DealEvent.created_at, DealEvent.id)
    )
    deals: dict[int, tuple[str | None, int | None, bool]] = {}
    for deal_id, kind, stage, amount in rows.all():
        old_stage, old_amount, _ = deals.get(deal_id, (None, None, True))
        is_open = kind not in ("won", "lost")
        deals[deal_id] = (stage or old_stage, amount if kind != "unwon" else old_amount, is_open)
    totals: dict[str, StageTotal] = {}
    for stage, amount, is_open in deals.values():
        if is_open and stage:
            total = totals.setdefault(stage, StageTotal())
            total.count += 1
            total.fen += int(amount or 0)
    return totals
