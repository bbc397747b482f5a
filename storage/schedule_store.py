"""SQL for scheduled work: firing keys, stand-up answers, leave, reminders, the pool reclaim, escalation.

`ScheduleStore` wraps a bound `Store` (one transaction, one organisation and team) and adds the queries
the jobs and the stand-up commands need. Exactly-once decisions are unique keys inserted with
ON CONFLICT DO NOTHING (`job_firings`, `notices`), never Python flags, because several replicas may
share one database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, delete, func, or_, select, update

from storage.deals import open_deal_exists
from storage.models import (
    Collaborator,
    Customer,
    FollowUp,
    HelpRequest,
    JobFiring,
    Leave,
    Member,
    Membership,
    Notice,
    Organisation,
    StandupAnswer,
    Team,
)
from storage.sql import rowcount
from storage.store import Store


def _as_utc(moment: datetime) -> datetime:
    """An aggregate skips the column's type: SQLite hands back a naive (UTC) value."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class TeamMember:
    member: Member
    role: str
    joined_at: datetime


async def all_teams(store: Store, team_id: int | None = None) -> list[tuple[Organisation, Team]]:
    """Every team with its organisation (the scheduler's work list), or just one."""
    query = select(Organisation, Team).join(Team, Team.org_id == Organisation.id).order_by(Team.id)
    if team_id is not None:
        query = query.where(Team.id == team_id)
    rows = await store.session.execute(query)
    return [(o, t) for o, t in rows.all()]


async def teams_with_open_help(store: Store) -> set[int]:
    """Teams with a help request nobody has taken: the only ones the escalation check can concern."""
    rows = await store.session.execute(select(HelpRequest.team_id).where(HelpRequest.status == "open").distinct())
    return {team_id for (team_id,) in rows.all()}


async def find_teams(store: Store, name_or_chat: str) -> list[tuple[Organisation, Team]]:
    query = (
        select(Organisation, Team)
        .join(Team, Team.org_id == Organisation.id)
        .where(or_(Team.name == name_or_chat, Team.chat_id == name_or_chat))
        .order_by(Team.id)
    )
    if name_or_chat.isdigit():
        query = (
            select(Organisation, Team)
            .join(Team, Team.org_id == Organisation.id)
            .where(or_(Team.id == int(name_or_chat), Team.name == name_or_chat, Team.chat_id == name_or_chat))
            .order_by(Team.id)
        )
    return [(o, t) for o, t in (await store.session.execute(query)).all()]


async def firings_since(store: Store, since: datetime) -> set[tuple[str, int, str]]:
    """(job, team_id, slot) of every firing whose slot was due since `since` — a cache warm-up only."""
    query = select(JobFiring.job, JobFiring.team_id, JobFiring.slot).where(JobFiring.due_at >= since)
    rows = await store.session.execute(query)
    return {(j, t, s) for j, t, s in rows.all()}


class ScheduleStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.session = store.session

    @property
    def org(self) -> Organisation:
        return self.store.org

    @property
    def team(self) -> Team:
        return self.store.team

    # ---------------------------------------------------------------- firings
    async def claim_firing(self, job: str, slot: str, due_at: datetime, now: datetime) -> bool:
        """Take the exactly-once key of (job, team, slot); False when someone already has it.

        On PostgreSQL a second replica's insert waits on the unique index until the first commits (then
        does nothing) or rolls back (then takes the key) — so the key and the outbox rows go together.
        """
        return await self.store.insert_if_absent(
            JobFiring,
            {
                "org_id": self.org.id,
                "team_id": self.team.id,
                "job": job,
                "slot": slot,
                "due_at": due_at,
                "fired_at": now,
                "messages": 0,
            },
            ("job", "team_id", "slot"),
        )

    async def record_firing_messages(self, job: str, slot: str, count: int) -> None:
        await self.session.execute(
            update(JobFiring)
            .where(JobFiring.job == job, JobFiring.team_id == self.team.id, JobFiring.slot == slot)
            .values(messages=count)
        )

    async def firing(self, job: str, slot: str) -> JobFiring | None:
        return (
            await self.session.execute(
                select(JobFiring).where(JobFiring.job == job, JobFiring.team_id == self.team.id, JobFiring.slot == slot)
            )
        ).scalar_one_or_none()

    async def add_notice(self, kind: str, entity_id: int, ref: str, now: datetime) -> bool:
        return await self.store.insert_if_absent(
            Notice,
            {"org_id": self.org.id, "team_id": self.team.id, "kind": kind, "entity_id": entity_id, "ref": ref,
             "created_at": now},
            ("kind", "entity_id", "ref"),
        )

    # ---------------------------------------------------------------- members
    async def active_members(self) -> list[TeamMember]:
        rows = await self.session.execute(
            select(Member, Membership.role, Membership.joined_at)
            .join(Membership, Membership.member_id == Member.id)
            .where(
                Membership.team_id == self.team.id,
                Membership.left_at.is_(None),
                Member.org_id == self.org.id,
                Member.active.is_(True),
            )
            .order_by(Membership.joined_at, Member.id)
        )
        return [TeamMember(m, r, j) for m, r, j in rows.all()]

    # ---------------------------------------------------------------- stand-up
    async def save_standup_answer(
        self, member: Member, day: date, plan: str, blockers: str | None, now: datetime
    ) -> bool:
        """Store today's answer; True when it replaced an earlier one."""
        mine = StandupAnswer.team_id == self.team.id, StandupAnswer.member_id == member.id
        answer_of = (*mine, StandupAnswer.day == day)
        existing = (await self.session.execute(select(StandupAnswer).where(*answer_of))).scalar_one_or_none()
        if existing is not None:
            existing.plan, existing.blockers, existing.updated_at = plan, blockers, now
            return True
        inserted = await self.store.insert_if_absent(
            StandupAnswer,
            {
                "org_id": self.org.id,
                "team_id": self.team.id,
                "member_id": member.id,
                "day": day,
                "plan": plan,
                "blockers": blockers,
                "created_at": now,
                "updated_at": now,
            },
            ("team_id", "member_id", "day"),
        )
        if not inserted:  # a concurrent first answer from the same member: the later one wins
            await self.session.execute(
                update(StandupAnswer)
                .where(*answer_of)
                .values(plan=plan, blockers=blockers, updated_at=now)
            )
        return not inserted

    async def standup_answers(self, day: date) -> list[StandupAnswer]:
        rows = await self.session.execute(
            select(StandupAnswer)
            .where(StandupAnswer.team_id == self.team.id, StandupAnswer.day == day)
            .order_by(StandupAnswer.created_at)
        )
        return list(rows.scalars().all())

    async def standup_answer_days(self, start: date, end: date) -> list[tuple[int, date]]:
        """(member_id, day) of every answer in [start, end)."""
        rows = await self.session.execute(
            select(StandupAnswer.member_id, StandupAnswer.day).where(
                StandupAnswer.team_id == self.team.id, StandupAnswer.day >= start, StandupAnswer.day < end
            )
        )
        return [(m, d) for m, d in rows.all()]

    # ------------------------------------------------------------------- leave
    async def start_leave(self, member: Member, starts_on: date, ends_on: date | None, now: datetime) -> None:
        await self._end_leaves(member, starts_on)
        self.session.add(
            Leave(org_id=self.org.id, team_id=self.team.id, member_id=member.id, starts_on=starts_on, ends_on=ends_on,
                  created_at=now)
        )
        until = {"until": ends_on.isoformat() if ends_on else None}
        await self.store.audit("leave", "member", member.id, None, until, now)

    async def end_leave(self, member: Member, today: date, now: datetime) -> bool:
        """Back from leave today; False when the member was not on leave."""
        if not await self.on_leave(member, today):
            return False
        await self._end_leaves(member, today)
        await self.store.audit("back", "member", member.id, None, None, now)
        return True

    async def _end_leaves(self, member: Member, today: date) -> None:
        mine = and_(Leave.team_id == self.team.id, Leave.member_id == member.id)
        await self.session.execute(delete(Leave).where(mine, Leave.starts_on >= today))
        await self.session.execute(
            update(Leave)
            .where(mine, Leave.starts_on < today, or_(Leave.ends_on.is_(None), Leave.ends_on >= today))
            .values(ends_on=date.fromordinal(today.toordinal() - 1))
            .execution_options(synchronize_session=False)
        )

    async def on_leave(self, member: Member, day: date) -> Leave | None:
        rows = await self.session.execute(
            select(Leave).where(
                Leave.team_id == self.team.id,
                Leave.member_id == member.id,
                Leave.starts_on <= day,
                or_(Leave.ends_on.is_(None), Leave.ends_on >= day),
            )
        )
        return rows.scalars().first()

    async def leaves_between(self, start: date, end: date) -> list[Leave]:
        """Leaves overlapping [start, end)."""
        rows = await self.session.execute(
            select(Leave).where(
                Leave.team_id == self.team.id,
                Leave.starts_on < end,
                or_(Leave.ends_on.is_(None), Leave.ends_on >= start),
            )
        )
        return list(rows.scalars().all())

    # -------------------------------------------------------------- follow-ups
    async def followups_due(self, day: date) -> list[Customer]:
        """Owned, active customers whose next follow-up (下次) is `day`, or overdue since an earlier day.

        An overdue step stays until it is dealt with: a follow-up posted on or after its day (in the
        organisation's time zone), or the date moved. The newest follow-up of a customer comes from the
        (customer_id, created_at) index; the day comparison is done here, where the zone is known.
        """
        latest = (
            select(func.max(FollowUp.created_at)).where(FollowUp.customer_id == Customer.id).scalar_subquery()
        )
        rows = await self.session.execute(
            select(Customer, latest)
            .where(
                Customer.team_id == self.team.id,
                Customer.org_id == self.org.id,
                Customer.next_followup_on <= day,
                open_deal_exists(),
                Customer.owner_id.is_not(None),
            )
            .order_by(Customer.owner_id, Customer.next_followup_on, Customer.name)
        )
        zone = ZoneInfo(self.org.timezone)
        due: list[Customer] = []
        for customer, last_at in rows.all():
            step = customer.next_followup_on
            assert step is not None  # the WHERE above
            if step == day or last_at is None or _as_utc(last_at).astimezone(zone).date() < step:
                due.append(customer)
        return due

    async def open_help_requests(self) -> list[HelpRequest]:
        rows = await self.session.execute(
            select(HelpRequest)
            .where(HelpRequest.team_id == self.team.id, HelpRequest.status.in_(("open", "taken")))
            .order_by(HelpRequest.number)
        )
        return list(rows.scalars().all())

    # -------------------------------------------------------------------- pool
    async def owned_idle_since(self, before: datetime) -> list[Customer]:
        """Active customers with an owner and no activity since `before` (index team/status/activity)."""
        rows = await self.session.execute(
            select(Customer)
            .where(
                Customer.team_id == self.team.id,
                Customer.org_id == self.org.id,
                open_deal_exists(),
                Customer.last_activity_at < before,
                Customer.owner_id.is_not(None),
            )
            .order_by(Customer.owner_id, Customer.last_activity_at)
        )
        return list(rows.scalars().all())

    async def reclaim_to_pool(self, customer: Customer, cutoff: datetime, now: datetime) -> bool:
        """Send an idle customer back to the pool, unless someone followed it up meanwhile."""
        owner = customer.owner_id
        result = await self.session.execute(
            update(Customer)
            .where(
                Customer.id == customer.id,
                Customer.owner_id == owner,
                open_deal_exists(),
                Customer.last_activity_at < cutoff,
            )
            .values(owner_id=None, released_by_id=owner, released_at=now)
            .execution_options(synchronize_session=False)
        )
        if rowcount(result) != 1:
            return False
        await self.session.execute(delete(Collaborator).where(Collaborator.customer_id == customer.id))
        await self.store.audit(
            "reclaim",
            "customer",
            customer.id,
            {"owner": owner, "last_activity_at": customer.last_activity_at.isoformat()},
            {"owner": None, "reason": "idle"},
            now,
        )
        return True

    # -------------------------------------------------------------- escalation
    async def open_help_created_before(self, before: datetime) -> list[HelpRequest]:
        rows = await self.session.execute(
            select(HelpRequest)
            .where(HelpRequest.team_id == self.team.id, HelpRequest.status == "open", HelpRequest.created_at < before)
            .order_by(HelpRequest.number)
        )
        return list(rows.scalars().all())

    async def members_by_id(self, ids: Sequence[int]) -> dict[int, Member]:
        return await self.store.members_by_id(list(ids))
