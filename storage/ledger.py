"""The ledger: one team's numbers for a period, the one source every report, goal, board and chart reads.

Wins, losses and un-wins are deal events carrying the amount at that moment (storage.deals); a
period's numbers are its events net of reversals. An un-win subtracts the win it undoes in the period
in which the un-win happens, so a closed period's numbers never change afterwards: a win in November
un-won in December leaves November as it was and shows December −1 / −amount. Per member, the amount
is the credited one (业绩分成, storage.credits) and the win count goes to the customer's owner at the
moment of the event. New customers are claims (audit action "claim") by the claiming member;
follow-ups are follow-up rows by author. Periods are [start, end).

Every query is bounded by the team and the period through an index that leads with them
(deal_events(team_id, kind, created_at), deal_credits(team_id, created_at), followups(team_id,
created_at), audit_log(team_id, action, created_at)); `pipeline_at` starts from the deals' current
state and rebuilds only the deals that changed after the moment (deal_events(team_id, created_at),
then deal_events(deal_id, created_at) per deal), so its cost follows the activity since, not history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, func, select

from storage.models import AuditLog, Customer, Deal, DealCredit, DealEvent, FollowUp
from storage.store import Store

WIN_KINDS = ("won", "unwon")
STATUS_KINDS = ("won", "lost", "unwon", "reopened")
_STATUS_AFTER = {"won": "won", "lost": "lost", "unwon": "open", "reopened": "open"}


@dataclass
class Credit:
    """A member's credited won amount (fen, signed) and win count in a period."""

    fen: int = 0
    count: int = 0


@dataclass
class CreditShare:
    """One member's part of one win: amount in fen (negative on an un-win) and share in basis points."""

    member_id: int
    fen: int
    share_bp: int


@dataclass
class WonDeal:
    """A win in the period — or, `reversal` True, an un-win of a win of an earlier period (fen < 0)."""

    customer: str
    deal: str
    fen: int
    owner_id: int | None
    at: datetime
    credits: list[CreditShare] = field(default_factory=list)
    reversal: bool = False


@dataclass
class PeriodWins:
    count: int = 0
    fen: int = 0
    by_member: dict[int, Credit] = field(default_factory=dict)
    deals: list[WonDeal] = field(default_factory=list)

    @property
    def reversals(self) -> list[WonDeal]:
        """Un-wins of earlier periods' wins: reports say these out loud (−1 个 / −金额)."""
        return [d for d in self.deals if d.reversal]


@dataclass
class LostDeal:
    customer: str
    deal: str
    fen: int | None
    owner_id: int | None
    reason: str | None
    at: datetime


@dataclass
class Activity:
    followups: int = 0
    new_customers: int = 0


@dataclass
class StageTotal:
    count: int = 0
    fen: int = 0


def _in_team_period(column: Any, team: Any, team_id: int, start: datetime, end: datetime) -> tuple[
    ColumnElement[bool], ...
]:
    """The team's rows with `column` in [start, end) (an index leading with (team_id, column))."""
    return team == team_id, column >= start, column < end


async def period_wins(store: Store, start: datetime, end: datetime) -> PeriodWins:
    """The team's wins in [start, end), net of the un-wins in it (see the module's docstring)."""
    team_id = store.team.id
    rows = await store.session.execute(
        select(DealEvent.id, DealEvent.deal_id, DealEvent.kind, DealEvent.amount_fen, DealEvent.owner_id,
               DealEvent.created_at, Customer.name, Deal.name)
        .join(Customer, Customer.id == DealEvent.customer_id)
        .join(Deal, Deal.id == DealEvent.deal_id)
        .where(*_in_team_period(DealEvent.created_at, DealEvent.team_id, team_id, start, end),
               DealEvent.kind.in_(WIN_KINDS))
        .order_by(DealEvent.created_at, DealEvent.id)
    )
    credits: dict[int, list[CreditShare]] = {}
    credit_rows = await store.session.execute(
        select(DealCredit.event_id, DealCredit.member_id, DealCredit.amount_fen, DealCredit.share_bp)
        .where(*_in_team_period(DealCredit.created_at, DealCredit.team_id, team_id, start, end))
        .order_by(DealCredit.id)
    )
    for event_id, member_id, fen, bp in credit_rows.all():
        credits.setdefault(event_id, []).append(CreditShare(member_id, int(fen), bp))
    wins = PeriodWins()
    open_wins: dict[int, list[WonDeal]] = {}  # deal id → its wins in the period not yet undone
    for event_id, deal_id, kind, amount, owner_id, at, customer, deal in rows.all():
        fen = int(amount or 0)
        sign = 1 if kind == "won" else -1
        wins.count += sign
        wins.fen += sign * fen
        for share in credits.get(event_id, []):
            wins.by_member.setdefault(share.member_id, Credit()).fen += share.fen
        if kind == "won":
            won = WonDeal(customer, deal, fen, owner_id, at, credits.get(event_id, []))
            wins.deals.append(won)
            open_wins.setdefault(deal_id, []).append(won)
        elif open_wins.get(deal_id):
            # Won and un-won in the period: neither is listed, and the count goes back to who had the win.
            undone = open_wins[deal_id].pop()
            wins.deals = [d for d in wins.deals if d is not undone]
            owner_id = undone.owner_id
        else:
            wins.deals.append(WonDeal(customer, deal, -fen, owner_id, at, credits.get(event_id, []), reversal=True))
        if owner_id is not None:
            wins.by_member.setdefault(owner_id, Credit()).count += sign
    return wins


async def period_losses(store: Store, start: datetime, end: datetime) -> list[LostDeal]:
    """The team's deals lost in [start, end), in order, with the amount at the loss and the reason."""
    rows = await store.session.execute(
        select(Customer.name, Deal.name, DealEvent.amount_fen, DealEvent.owner_id, Deal.lost_reason,
               DealEvent.created_at)
        .join(Customer, Customer.id == DealEvent.customer_id)
        .join(Deal, Deal.id == DealEvent.deal_id)
        .where(*_in_team_period(DealEvent.created_at, DealEvent.team_id, store.team.id, start, end),
               DealEvent.kind == "lost")
        .order_by(DealEvent.created_at, DealEvent.id)
    )
    return [LostDeal(c, d, fen, owner, reason, at) for c, d, fen, owner, reason, at in rows.all()]


async def activity_by_member(store: Store, start: datetime, end: datetime) -> dict[int, Activity]:
    """{member id: follow-ups written and customers claimed in [start, end)}."""
    team_id = store.team.id
    found: dict[int, Activity] = {}
    followups = await store.session.execute(
        select(FollowUp.author_id, func.count())
        .where(*_in_team_period(FollowUp.created_at, FollowUp.team_id, team_id, start, end))
        .group_by(FollowUp.author_id)
    )
    for author_id, n in followups.all():
        found.setdefault(author_id, Activity()).followups = int(n)
    claims = await store.session.execute(
        select(AuditLog.actor_id, func.count())
        .where(*_in_team_period(AuditLog.created_at, AuditLog.team_id, team_id, start, end),
               AuditLog.action == "claim", AuditLog.actor_id.is_not(None))
        .group_by(AuditLog.actor_id)
    )
    for member_id, n in claims.all():
        if member_id is not None:  # by the query; narrows the type
            found.setdefault(member_id, Activity()).new_customers = int(n)
    return found


async def pipeline_at(store: Store, at: datetime) -> dict[str, StageTotal]:
    """{stage: open deals and their amount} of the team as they stood at `at`, rebuilt from history.

    The deals' current state is the state at `at` for every deal without an event since; the ones
    with events since are taken out and put back as their events up to `at` say (a deal with none
    before `at` did not exist yet). Status: the latest won/lost/unwon/reopened event (open without
    one); stage: the latest event naming one; amount: the latest event carrying one.
    """
    team_id = store.team.id
    totals: dict[str, StageTotal] = {}

    def add(stage: str, fen: int | None, sign: int) -> None:
        total = totals.setdefault(stage, StageTotal())
        total.count += sign
        total.fen += sign * int(fen or 0)

    now_rows = await store.session.execute(
        select(Deal.stage, func.count(), func.coalesce(func.sum(Deal.amount_fen), 0))
        .where(Deal.team_id == team_id, Deal.status == "open")
        .group_by(Deal.stage)
    )
    for stage, n, fen in now_rows.all():
        totals[stage] = StageTotal(int(n), int(fen or 0))
    changed = select(DealEvent.deal_id).where(DealEvent.team_id == team_id, DealEvent.created_at >= at)
    rows = await store.session.execute(
        select(
            Deal.status, Deal.stage, Deal.amount_fen,
            _latest(DealEvent.id, at), _latest(DealEvent.kind, at, DealEvent.kind.in_(STATUS_KINDS)),
            _latest(DealEvent.stage_after, at, DealEvent.stage_after.is_not(None)),
            _latest(DealEvent.amount_fen, at, DealEvent.amount_fen.is_not(None)),
        ).where(Deal.id.in_(changed))
    )
    for status, stage, amount, existed, kind_then, stage_then, amount_then in rows.all():
        if status == "open":
            add(stage, amount, -1)
        if existed is not None and _STATUS_AFTER.get(kind_then or "", "open") == "open":
            add(stage_then or stage, amount_then, 1)
    return {stage: total for stage, total in totals.items() if total.count}


def _latest(column: Any, at: datetime, *where: ColumnElement[bool]) -> ScalarSelect[Any]:
    """The value of `column` in the deal's latest event before `at` (index deal_events(deal_id, created_at))."""
    return (
        select(column)
        .where(DealEvent.deal_id == Deal.id, DealEvent.created_at < at, *where)
        .order_by(DealEvent.created_at.desc(), DealEvent.id.desc())
        .limit(1)
        .scalar_subquery()
    )
