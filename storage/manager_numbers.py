"""What managers read beyond the period's sums: who moved customers, whose next steps are overdue,
which help requests waited, who is expected at the stand-up.

Won, lost and pipeline numbers are not here: they come from storage.ledger, the one module of period
numbers. These queries are bounded by team and period like storage.reports (audit_log(team_id,
action, created_at), help_requests(team_id, created_at)), and read history where a past period asks
for it (a help request's open span is its created/resolved times, not its current status).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, or_, select

from storage.models import AuditLog, Customer, HelpRequest, Leave
from storage.schedule_store import ScheduleStore, TeamMember
from storage.store import Store

# Audit actions that move a customer away from its owner, and what a manager calls each.
MOVE_ACTIONS: dict[str, str] = {
    "release": "释放",
    "transfer": "转交",
    "reclaim": "退回公海",
    "offboard": "离职交接",
    "remove_member": "移出交接",
}


@dataclass
class OwnerMove:
    action: str  # a key of MOVE_ACTIONS
    customer: str
    from_id: int | None
    to_id: int | None
    at: datetime


@dataclass
class WaitingHelp:
    number: int
    content: str
    requester_id: int
    created_at: datetime
    taken: bool


async def owner_moves(store: Store, start: datetime, end: datetime) -> list[OwnerMove]:
    """Releases, transfers, reclaims and hand-overs of the team's customers in [start, end), oldest first."""
    rows = await store.session.execute(
        select(AuditLog.action, Customer.name, AuditLog.before, AuditLog.after, AuditLog.created_at)
        .join(Customer, Customer.id == AuditLog.entity_id)
        .where(
            AuditLog.team_id == store.team.id,
            AuditLog.action.in_(tuple(MOVE_ACTIONS)),
            AuditLog.entity == "customer",
            AuditLog.created_at >= start,
            AuditLog.created_at < end,
        )
        .order_by(AuditLog.created_at, AuditLog.id)
    )
    moves = []
    for action, name, before, after, at in rows.all():
        owner_before = (before or {}).get("owner")
        owner_after = (after or {}).get("owner")
        moves.append(
            OwnerMove(
                action,
                name,
                owner_before if isinstance(owner_before, int) else None,
                owner_after if isinstance(owner_after, int) else None,
                at,
            )
        )
    return moves


async def overdue_steps(store: Store, day: date) -> dict[int, list[tuple[str, int]]]:
    """{owner id: [(customer, days overdue)]}: the stand-up prompt's overdue rule (a 下次 date passed with
    no follow-up on or after it), most overdue first."""
    overdue: dict[int, list[tuple[str, int]]] = {}
    for customer in await ScheduleStore(store).followups_due(day):
        step = customer.next_followup_on
        if step is not None and step < day and customer.owner_id is not None:
            overdue.setdefault(customer.owner_id, []).append((customer.name, (day - step).days))
    for steps in overdue.values():
        steps.sort(key=lambda s: (-s[1], s[0]))
    return overdue


async def help_waiting(store: Store, at: datetime, hours: int = 24) -> list[WaitingHelp]:
    """Help requests that at moment `at` had been open (not resolved) for more than `hours`.

    From the request's own times, so a past period's report shows what was waiting then: raised
    before `at - hours`, and resolved only at or after `at` (or not at all).
    """
    rows = await store.session.execute(
        select(HelpRequest)
        .where(
            HelpRequest.team_id == store.team.id,
            HelpRequest.created_at < at - timedelta(hours=hours),
            or_(
                and_(HelpRequest.resolved_at.is_(None), HelpRequest.status.in_(("open", "taken"))),
                HelpRequest.resolved_at >= at,
            ),
        )
        .order_by(HelpRequest.number)
    )
    return [
        WaitingHelp(
            r.number, r.content, r.requester_id, r.created_at, r.taken_at is not None and r.taken_at < at
        )
        for r in rows.scalars().all()
    ]


@dataclass
class Roster:
    """Who the team expects at the stand-up and in the reports: reps, without leads and admins."""

    reps: list[TeamMember]
    leaves: list[Leave]

    def on_leave(self, member_id: int, day: date) -> bool:
        return any(
            leave.member_id == member_id and leave.starts_on <= day and (leave.ends_on is None or leave.ends_on >= day)
            for leave in self.leaves
        )


async def team_roster(store: Store, first: date, after: date) -> Roster:
    """The team's reps (leads and admins, flagged or in SALESBOT_ADMINS, are managers: they read the
    reports, they are not in them) and the leaves that overlap the days [first, after)."""
    ss = ScheduleStore(store)
    reps = [tm for tm in await ss.active_members() if tm.role != "lead" and not store.is_admin(tm.member)]
    return Roster(reps, await ss.leaves_between(first, after))
