"""Store: the product's vocabulary over SQL, and the only place that speaks it.

A Store lives for one unit of work (one transaction). After `bind()` it is scoped to one
organisation, one team and one acting member, and every query it runs filters on that organisation
— so a handler cannot read another organisation's rows even by mistake.

Races that matter (two reps claiming one customer, a platform delivering a message twice) are decided
by unique constraints and conditional updates in the database, never by Python-side locks, because
several bot replicas may share one PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from storage.models import (
    AuditLog,
    Collaborator,
    Customer,
    FollowUp,
    HelpRequest,
    InboundMessage,
    Member,
    Membership,
    Organisation,
    OutboxMessage,
    Team,
)

Role = Literal["rep", "lead", "admin"]
ClaimOutcome = Literal["created", "from_pool", "already_yours", "owned_by_other", "closed"]


@dataclass
class ClaimResult:
    outcome: ClaimOutcome
    customer: Customer
    owner: Member | None = None


@dataclass
class CustomerDetail:
    customer: Customer
    owner: Member | None
    collaborators: list[Member]
    followups: list[tuple[FollowUp, Member]]


@dataclass
class HelpView:
    request: HelpRequest
    requester: Member
    helper: Member | None
    customer: Customer | None


@dataclass
class Scope:
    org: Organisation
    team: Team
    actor: Member | None
    role: Role = "rep"
    msg_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class NotBound(RuntimeError):
    pass


class NoTeamYet(LookupError):
    """A private chat from someone who has never spoken in a team's group: we cannot scope them."""


def _role_of(actor: Member, membership: Membership, admin_ids: frozenset[str]) -> Role:
    """Admin by flag or by SALESBOT_ADMINS, else the member's role in this team."""
    if actor.is_admin or actor.user_id in admin_ids:
        return "admin"
    return "lead" if membership.role == "lead" else "rep"


class Store:
    def __init__(self, session: AsyncSession, *, default_timezone: str = "Asia/Shanghai") -> None:
        self.session = session
        self._scope: Scope | None = None
        self.enqueued = 0
        # The zone a newly seen organisation starts with (SALESBOT_TIMEZONE); admins change it later.
        self.default_timezone = default_timezone

    # ------------------------------------------------------------------ scope
    @property
    def scope(self) -> Scope:
        if self._scope is None:
            raise NotBound("Store used before bind()")
        return self._scope

    @property
    def org(self) -> Organisation:
        return self.scope.org

    @property
    def team(self) -> Team:
        return self.scope.team

    @property
    def actor(self) -> Member:
        actor = self.scope.actor
        if actor is None:
            raise NotBound("this unit of work has no acting member")
        return actor

    @property
    def role(self) -> Role:
        return self.scope.role

    async def bind(
        self,
        *,
        platform: str,
        org_key: str,
        chat_id: str,
        chat_title: str | None,
        user_id: str | None,
        user_name: str | None,
        now: datetime,
        admin_ids: frozenset[str] = frozenset(),
        msg_id: str | None = None,
        private: bool = False,
    ) -> Scope:
        """Find or create the organisation, team and member a message comes from (first contact).

        A private (1:1) chat is not a team: it is scoped to the team whose group the member joined
        most recently, so `我的` in a private chat shows the same customers as in the group.
        """
        actor: Member | None = None
        role: Role = "rep"
        if not private and user_id is not None:
            known = await self._bind_known(platform, org_key, chat_id, user_id, user_name)
            if known is not None:
                org, team, actor, membership = known
                role = _role_of(actor, membership, admin_ids)
                self._scope = Scope(org=org, team=team, actor=actor, role=role, msg_id=msg_id)
                return self._scope
        org = await self.ensure_org(platform, org_key, now)
        if private:
            if user_id is None:
                raise NoTeamYet(user_id)
            actor = await self.ensure_member(org, user_id, user_name or user_id, now)
            row = (
                await self.session.execute(
                    select(Team, Membership)
                    .join(Membership, Membership.team_id == Team.id)
                    .where(Team.org_id == org.id, Membership.member_id == actor.id)
                    .order_by(Membership.joined_at.desc(), Team.id.desc())
                    .limit(1)
                )
            ).first()
            if row is None:
                raise NoTeamYet(user_id)
            team, membership = row
        else:
            team = await self.ensure_team(org, chat_id, chat_title or chat_id, now)
        if user_id is not None:
            actor = actor or await self.ensure_member(org, user_id, user_name or user_id, now)
            membership = await self.ensure_membership(team, actor, now)
            role = _role_of(actor, membership, admin_ids)
        self._scope = Scope(org=org, team=team, actor=actor, role=role, msg_id=msg_id)
        return self._scope

    async def _bind_known(
        self, platform: str, org_key: str, chat_id: str, user_id: str, user_name: str | None
    ) -> tuple[Organisation, Team, Member, Membership] | None:
        """Organisation, team, member and membership in one round trip, when all four exist.

        That is every message but a team's or member's first, so the common case costs one SELECT
        instead of four insert-if-absent + select pairs; anything missing returns None and `bind`
        takes the creating path.
        """
        row = (
            await self.session.execute(
                _BIND_KNOWN, {"platform": platform, "org_key": org_key, "chat_id": chat_id, "user_id": user_id}
            )
        ).first()
        if row is None:
            return None
        org, team, member, membership = row
        name = user_name or user_id
        if name and name != user_id and member.name != name[:64]:
            member.name = name[:64]
        return org, team, member, membership

    def unbind(self) -> None:
        """Forget the scope, so the next message of a batch sharing this transaction binds afresh."""
        self._scope = None

    def bind_team(self, org: Organisation, team: Team) -> Scope:
        """Scope to a team with no acting member (scheduled jobs, operator commands)."""
        self._scope = Scope(org=org, team=team, actor=None, role="admin")
        return self._scope

    # -------------------------------------------------------------- helpers
    def _dialect(self) -> str:
        return self.session.bind.dialect.name if self.session.bind else "sqlite"

    def _insert_ignore(self, model: type, values: dict[str, Any], conflict: Sequence[str]) -> Any:
        dialect = self.session.bind.dialect.name if self.session.bind else "sqlite"
        module = insert_dialect(dialect)
        return module.insert(model).values(**values).on_conflict_do_nothing(index_elements=list(conflict))

    async def _insert_if_absent(self, model: type, values: dict[str, Any], conflict: Sequence[str]) -> bool:
        result = await self.session.execute(self._insert_ignore(model, values, conflict))
        return bool(result.rowcount)

    async def audit(
        self,
        action: str,
        entity: str,
        entity_id: int | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        now: datetime,
    ) -> None:
        scope = self.scope
        # One prebuilt Core INSERT: no ORM object for the unit of work to track and flush.
        await self.session.execute(
            _AUDIT_INSERT,
            {
                "org_id": scope.org.id,
                "team_id": scope.team.id,
                "actor_id": scope.actor.id if scope.actor else None,
                "action": action,
                "entity": entity,
                "entity_id": entity_id,
                "before": before,
                "after": after,
                "msg_id": scope.msg_id,
                "created_at": now,
            },
        )

    # ------------------------------------------------------ inbound / tenancy
    async def record_inbound(self, platform: str, msg_id: str, org_key: str, now: datetime) -> bool:
        """True the first time a (platform, msg_id) is seen; False for a platform's re-delivery.

        For messages handled in the transaction that records them (console, WeCom): the row is
        written "done" at once.
        """
        result = await self.session.execute(
            inbound_insert(self._dialect()), inbound_values(platform, msg_id, org_key, now, status="done")
        )
        return bool(result.rowcount)

    async def queue_inbound(self, platform: str, msg_id: str, org_key: str, payload: Any, now: datetime,
                            lease_until: datetime | None = None) -> bool:
        """Record a message to process after acknowledging it; False if (platform, msg_id) is known.

        The same unique row that deduplicates re-deliveries carries the payload, so once this commits
        the message survives a crash between the platform's answer and the command. The recording
        process holds it until `lease_until`: recovery elsewhere leaves it alone while it waits in that
        process's queue, and takes it once the lease lapses (the process died).
        """
        result = await self.session.execute(
            inbound_insert(self._dialect()),
            inbound_values(platform, msg_id, org_key, now, status="received", payload=payload, lease_until=lease_until),
        )
        return bool(result.rowcount)

    async def finish_inbound(self, platform: str, msg_id: str, now: datetime, status: str = "done") -> bool:
        """Mark a queued message processed in this (the command's) transaction; False if it already was.

        The conditional UPDATE takes the row's lock until commit, so two workers (or replicas) that
        got the same message serialise here and the second finds it done: one effect.
        """
        result = await self.session.execute(
            _INBOUND_FINISH, {"p": platform, "m": msg_id, "new_status": status, "done_at": now}
        )
        return bool(result.rowcount)

    async def finish_inbound_many(self, platform: str, msg_ids: Sequence[str], now: datetime) -> set[str]:
        """`finish_inbound` for a batch of queued messages in one statement: the ids that were waiting."""
        result = await self.session.execute(_INBOUND_FINISH_MANY, {"p": platform, "ids": list(msg_ids), "done_at": now})
        return {msg_id for (msg_id,) in result.all()}

    async def claim_stale_inbound(
        self, platform: str, *, received_before: datetime, now: datetime, lease_until: datetime, limit: int = 100
    ) -> list[tuple[str, Any]]:
        """(msg_id, payload) of recorded-but-unprocessed messages older than `received_before`.

        Claimed with a lease (`claimed_until`) in one conditional UPDATE, so two replicas recovering at
        once never both pick a row up; on PostgreSQL rows locked by a command in flight are skipped.
        A claimed row that is still not done when its lease lapses is picked up again.
        """
        table = InboundMessage.__table__
        candidates = (
            select(table.c.id)
            .where(
                table.c.platform == platform,
                table.c.status == "received",
                table.c.received_at < received_before,
                or_(table.c.claimed_until.is_(None), table.c.claimed_until <= now),
            )
            .order_by(table.c.id)
            .limit(limit)
        )
        if self._dialect() == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        stmt = (
            update(table)
            .where(table.c.id.in_(candidates.scalar_subquery()), table.c.status == "received")
            .values(claimed_until=lease_until)
            .returning(table.c.msg_id, table.c.payload)
        )
        rows = (await self.session.execute(stmt)).all()
        return [(m, p) for m, p in rows]

    async def _get_or_create(self, query: Any, model: type, values: dict[str, Any], conflict: Sequence[str]) -> Any:
        """Select first and insert only when missing: rows are created once and read ever after.

        The insert ignores conflicts, so two replicas creating the same row at once both end up with
        the one that won; the second select sees it (READ COMMITTED takes a new snapshot per statement).
        """
        found = (await self.session.execute(query)).scalar_one_or_none()
        if found is not None:
            return found
        await self._insert_if_absent(model, values, conflict)
        return (await self.session.execute(query)).scalar_one()

    async def ensure_org(self, platform: str, corp_key: str, now: datetime) -> Organisation:
        return await self._get_or_create(
            select(Organisation).where(Organisation.platform == platform, Organisation.corp_key == corp_key),
            Organisation,
            {"platform": platform, "corp_key": corp_key, "name": corp_key, "timezone": self.default_timezone, "created_at": now},
            ("platform", "corp_key"),
        )

    async def ensure_team(self, org: Organisation, chat_id: str, name: str, now: datetime) -> Team:
        return await self._get_or_create(
            select(Team).where(Team.org_id == org.id, Team.chat_id == chat_id),
            Team,
            {
                "org_id": org.id,
                "chat_id": chat_id,
                "name": name[:128],
                "help_seq": 0,
                "max_active_customers": 50,
                "cooldown_days": 7,
                "settings": {},
                "created_at": now,
            },
            ("org_id", "chat_id"),
        )

    async def ensure_member(self, org: Organisation, user_id: str, name: str, now: datetime) -> Member:
        member: Member = await self._get_or_create(
            select(Member).where(Member.org_id == org.id, Member.user_id == user_id),
            Member,
            {"org_id": org.id, "user_id": user_id, "name": name[:64], "is_admin": False, "active": True, "created_at": now},
            ("org_id", "user_id"),
        )
        if name and name != user_id and member.name != name[:64]:
            member.name = name[:64]
        return member

    async def ensure_membership(self, team: Team, member: Member, now: datetime) -> Membership:
        membership: Membership = await self._get_or_create(
            select(Membership).where(Membership.team_id == team.id, Membership.member_id == member.id),
            Membership,
            {"team_id": team.id, "member_id": member.id, "role": "rep", "joined_at": now},
            ("team_id", "member_id"),
        )
        return membership

    # ---------------------------------------------------------------- members
    async def find_members(self, token: str) -> list[Member]:
        """Members of this organisation whose user id or display name is `token` (team members first)."""
        rows = await self.session.execute(
            select(Member)
            .where(Member.org_id == self.org.id, or_(Member.user_id == token, Member.name == token))
            .order_by(Member.id)
        )
        return list(rows.scalars().all())

    async def owner_of(self, customer: Customer) -> Member | None:
        """The customer's owner, or None while it sits in the public pool."""
        if customer.owner_id is None:
            return None
        return (await self.members_by_id([customer.owner_id])).get(customer.owner_id)

    async def members_by_id(self, ids: Sequence[int]) -> dict[int, Member]:
        if not ids:
            return {}
        rows = await self.session.execute(
            select(Member).where(Member.org_id == self.org.id, Member.id.in_(set(ids)))
        )
        return {m.id: m for m in rows.scalars().all()}

    async def set_team_role(self, member: Member, role: Literal["rep", "lead"], now: datetime) -> str | None:
        membership = await self.ensure_membership(self.team, member, now)
        before = membership.role
        membership.role = role
        await self.audit("set_role", "member", member.id, {"role": before}, {"role": role}, now)
        return before

    async def set_admin(self, org: Organisation, member: Member, is_admin: bool, now: datetime) -> None:
        """Admin is organisation-wide, so this needs no team scope (operators run it from the CLI)."""
        before = member.is_admin
        member.is_admin = is_admin
        self.session.add(
            AuditLog(
                org_id=org.id,
                action="set_admin",
                entity="member",
                entity_id=member.id,
                before={"is_admin": before},
                after={"is_admin": is_admin},
                created_at=now,
            )
        )

    async def team_leads(self) -> list[Member]:
        rows = await self.session.execute(
            select(Member)
            .join(Membership, Membership.member_id == Member.id)
            .where(Membership.team_id == self.team.id, Membership.role == "lead", Member.active.is_(True))
            .order_by(Member.id)
        )
        return list(rows.scalars().all())

    # ------------------------------------------------------------ team rules
    async def update_team_settings(self, changes: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Change pool rules (columns) or other settings (JSON) of the bound team, audit-logged."""
        team = self.team
        before: dict[str, Any] = {}
        settings = dict(team.settings or {})
        for key, value in changes.items():
            if key in ("max_active_customers", "daily_claim_limit", "cooldown_days"):
                before[key] = getattr(team, key)
                setattr(team, key, value)
            else:
                before[key] = settings.get(key)
                settings[key] = value
        team.settings = settings
        await self.audit("configure", "team", team.id, before, changes, now)
        return before

    async def set_org_timezone(self, tz_name: str, now: datetime) -> str:
        """Change the organisation's time zone (every schedule and "today" follows it), audit-logged."""
        org = self.org
        before = org.timezone
        org.timezone = tz_name
        await self.audit("configure", "organisation", org.id, {"timezone": before}, {"timezone": tz_name}, now)
        return before

    # -------------------------------------------------------------- customers
    def _customers(self) -> Any:
        return select(Customer).where(Customer.org_id == self.org.id, Customer.team_id == self.team.id)

    async def customer_by_norm(self, norm_name: str) -> Customer | None:
        params = {"org_id": self.org.id, "team_id": self.team.id, "norm_name": norm_name}
        return (await self.session.execute(_CUSTOMER_BY_NORM, params)).scalar_one_or_none()

    async def customer_by_id(self, customer_id: int) -> Customer | None:
        return (await self.session.execute(self._customers().where(Customer.id == customer_id))).scalar_one_or_none()

    async def search_customers(self, norm_query: str, raw_query: str, limit: int = 20) -> list[Customer]:
        """Customers whose normalised or display name contains the query (exact matches first)."""
        pattern_norm = f"%{_escape_like(norm_query)}%"
        pattern_raw = f"%{_escape_like(raw_query)}%"
        rows = await self.session.execute(
            self._customers()
            .where(
                or_(
                    Customer.norm_name.like(pattern_norm, escape="\\") if norm_query else False,
                    Customer.name.like(pattern_raw, escape="\\") if raw_query else False,
                )
            )
            .order_by(Customer.norm_name != norm_query, func.length(Customer.norm_name), Customer.id)
            .limit(limit)
        )
        return list(rows.scalars().all())

    async def all_customer_names(self) -> list[tuple[int, str, str]]:
        rows = await self.session.execute(
            select(Customer.id, Customer.norm_name, Customer.name).where(
                Customer.org_id == self.org.id, Customer.team_id == self.team.id
            )
        )
        return [(i, n, d) for i, n, d in rows.all()]

    async def count_active_owned(self, member: Member) -> int:
        return (
            await self.session.execute(
                select(func.count())
                .select_from(Customer)
                .where(
                    Customer.org_id == self.org.id,
                    Customer.team_id == self.team.id,
                    Customer.owner_id == member.id,
                    Customer.status == "active",
                )
            )
        ).scalar_one()

    async def count_claims_since(self, member: Member, since: datetime) -> int:
        return (
            await self.session.execute(
                select(func.count())
                .select_from(AuditLog)
                .where(
                    AuditLog.org_id == self.org.id,
                    AuditLog.team_id == self.team.id,
                    AuditLog.actor_id == member.id,
                    AuditLog.action == "claim",
                    AuditLog.created_at >= since,
                )
            )
        ).scalar_one()

    async def claim_customer(self, name: str, norm_name: str, now: datetime) -> ClaimResult:
        """Claim a new customer or take one from the pool; the database decides concurrent claims."""
        me = self.actor
        created = await self._insert_if_absent(
            Customer,
            {
                "org_id": self.org.id,
                "team_id": self.team.id,
                "name": name[:200],
                "norm_name": norm_name[:200],
                "owner_id": me.id,
                "stage": "线索",
                "status": "active",
                "claimed_at": now,
                "last_activity_at": now,
                "created_at": now,
            },
            ("team_id", "norm_name"),
        )
        customer = await self.customer_by_norm(norm_name[:200])
        assert customer is not None
        if created:
            await self.audit("claim", "customer", customer.id, None, {"owner": me.id, "name": customer.name}, now)
            return ClaimResult("created", customer, me)
        await self.session.refresh(customer)
        if customer.owner_id == me.id:
            return ClaimResult("already_yours", customer, me)
        if customer.status != "active":
            return ClaimResult("closed", customer, await self.owner_of(customer))
        if customer.owner_id is None:
            taken = await self.session.execute(
                update(Customer)
                .where(Customer.id == customer.id, Customer.owner_id.is_(None), Customer.status == "active")
                .values(owner_id=me.id, claimed_at=now, last_activity_at=now)
                .execution_options(synchronize_session=False)
            )
            await self.session.refresh(customer)
            if taken.rowcount == 1:
                await self.audit("claim", "customer", customer.id, {"owner": None}, {"owner": me.id}, now)
                return ClaimResult("from_pool", customer, me)
        owner = await self.owner_of(customer)
        return ClaimResult("owned_by_other", customer, owner)

    async def release_customer(self, customer: Customer, now: datetime, action: str = "release") -> None:
        before = {"owner": customer.owner_id}
        customer.released_by_id = customer.owner_id
        customer.released_at = now
        customer.owner_id = None
        await self.session.execute(
            Collaborator.__table__.delete().where(Collaborator.customer_id == customer.id)
        )
        await self.audit(action, "customer", customer.id, before, {"owner": None}, now)

    async def transfer_customer(self, customer: Customer, to: Member, now: datetime) -> None:
        before = {"owner": customer.owner_id}
        customer.owner_id = to.id
        customer.claimed_at = now
        customer.last_activity_at = now
        await self.session.execute(
            Collaborator.__table__.delete().where(Collaborator.customer_id == customer.id, Collaborator.member_id == to.id)
        )
        await self.audit("transfer", "customer", customer.id, before, {"owner": to.id}, now)

    async def collaborators(self, customer: Customer) -> list[Member]:
        rows = await self.session.execute(
            select(Member)
            .join(Collaborator, Collaborator.member_id == Member.id)
            .where(Collaborator.customer_id == customer.id, Member.org_id == self.org.id)
            .order_by(Collaborator.added_at)
        )
        return list(rows.scalars().all())

    async def add_collaborator(self, customer: Customer, member: Member, now: datetime) -> bool:
        added = await self._insert_if_absent(
            Collaborator,
            {"customer_id": customer.id, "member_id": member.id, "added_at": now},
            ("customer_id", "member_id"),
        )
        if added:
            await self.audit("share", "customer", customer.id, None, {"collaborator": member.id}, now)
        return added

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
        before = {
            "stage": customer.stage,
            "amount_fen": customer.amount_fen,
            "next_followup_on": customer.next_followup_on.isoformat() if customer.next_followup_on else None,
            "status": customer.status,
        }
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
        after = {
            "stage": customer.stage,
            "amount_fen": customer.amount_fen,
            "next_followup_on": customer.next_followup_on.isoformat() if customer.next_followup_on else None,
            "status": customer.status,
        }
        await self.audit("followup", "customer", customer.id, before, after, now)

    async def customer_detail(self, customer: Customer, limit: int = 10) -> CustomerDetail:
        owner = await self.owner_of(customer)
        rows = await self.session.execute(
            select(FollowUp, Member)
            .join(Member, Member.id == FollowUp.author_id)
            .where(FollowUp.org_id == self.org.id, FollowUp.customer_id == customer.id)
            .order_by(FollowUp.created_at.desc(), FollowUp.id.desc())
            .limit(limit)
        )
        return CustomerDetail(customer, owner, await self.collaborators(customer), [(f, m) for f, m in rows.all()])

    async def customers_of(self, member: Member, status: str = "active") -> list[Customer]:
        params = {"org_id": self.org.id, "team_id": self.team.id, "member_id": member.id, "status": status}
        return list((await self.session.execute(_CUSTOMERS_OF, params)).scalars().all())

    async def shared_with(self, member: Member) -> list[Customer]:
        params = {"org_id": self.org.id, "team_id": self.team.id, "member_id": member.id}
        return list((await self.session.execute(_SHARED_WITH, params)).scalars().all())

    async def is_collaborator(self, customer: Customer, member: Member) -> bool:
        row = await self.session.execute(
            select(Collaborator.member_id).where(
                Collaborator.customer_id == customer.id, Collaborator.member_id == member.id
            )
        )
        return row.first() is not None

    async def pool_customers(self, limit: int = 30) -> tuple[list[Customer], int]:
        condition = and_(Customer.owner_id.is_(None), Customer.status == "active")
        rows = await self.session.execute(
            self._customers().where(condition).order_by(Customer.released_at.desc().nulls_last(), Customer.id).limit(limit)
        )
        total = (
            await self.session.execute(
                select(func.count())
                .select_from(Customer)
                .where(Customer.org_id == self.org.id, Customer.team_id == self.team.id, condition)
            )
        ).scalar_one()
        return list(rows.scalars().all()), total

    # ------------------------------------------------------------ help requests
    async def open_help_request(self, content: str, customer: Customer | None, now: datetime) -> HelpRequest:
        number = (
            await self.session.execute(
                update(Team)
                .where(Team.id == self.team.id, Team.org_id == self.org.id)
                .values(help_seq=Team.help_seq + 1)
                .returning(Team.help_seq)
            )
        ).scalar_one()
        request = HelpRequest(
            org_id=self.org.id,
            team_id=self.team.id,
            number=number,
            customer_id=customer.id if customer else None,
            requester_id=self.actor.id,
            content=content,
            status="open",
            created_at=now,
        )
        self.session.add(request)
        await self.session.flush()
        await self.audit("ask", "help_request", request.id, None, {"number": number, "content": content}, now)
        return request

    async def help_request(self, number: int) -> HelpView | None:
        req = (
            await self.session.execute(
                select(HelpRequest).where(
                    HelpRequest.org_id == self.org.id, HelpRequest.team_id == self.team.id, HelpRequest.number == number
                )
            )
        ).scalar_one_or_none()
        if req is None:
            return None
        return (await self._help_views([req]))[0]

    async def _help_views(self, requests: Sequence[HelpRequest]) -> list[HelpView]:
        member_ids = [r.requester_id for r in requests] + [r.helper_id for r in requests if r.helper_id]
        members = await self.members_by_id(member_ids)
        customer_ids = {r.customer_id for r in requests if r.customer_id}
        customers: dict[int, Customer] = {}
        if customer_ids:
            rows = await self.session.execute(self._customers().where(Customer.id.in_(customer_ids)))
            customers = {c.id: c for c in rows.scalars().all()}
        return [
            HelpView(
                r,
                members[r.requester_id],
                members.get(r.helper_id) if r.helper_id else None,
                customers.get(r.customer_id) if r.customer_id else None,
            )
            for r in requests
        ]

    async def take_help_request(self, request: HelpRequest, now: datetime) -> bool:
        """Atomically take an open request; False when someone else got there first."""
        result = await self.session.execute(
            update(HelpRequest)
            .where(HelpRequest.id == request.id, HelpRequest.status == "open")
            .values(status="taken", helper_id=self.actor.id, taken_at=now)
            .execution_options(synchronize_session=False)
        )
        await self.session.refresh(request)
        if result.rowcount != 1:
            return False
        await self.audit("take", "help_request", request.id, {"status": "open"}, {"status": "taken", "helper": self.actor.id}, now)
        return True

    async def resolve_help_request(self, request: HelpRequest, note: str | None, now: datetime) -> None:
        before = {"status": request.status}
        request.status = "resolved"
        request.resolution = note
        request.resolved_at = now
        await self.audit("resolve", "help_request", request.id, before, {"status": "resolved", "note": note}, now)

    async def reopen_help_request(self, request: HelpRequest, reason: str | None, now: datetime) -> None:
        """Back to work: "taken" when someone had taken it (they stay the helper), otherwise "open"."""
        before = {"status": request.status, "note": request.resolution}
        request.status = "taken" if request.helper_id else "open"
        request.resolution = None
        request.resolved_at = None
        await self.audit("reopen", "help_request", request.id, before, {"status": request.status, "reason": reason}, now)

    async def open_help_requests(self) -> list[HelpView]:
        rows = await self.session.execute(
            select(HelpRequest)
            .where(
                HelpRequest.org_id == self.org.id,
                HelpRequest.team_id == self.team.id,
                HelpRequest.status.in_(("open", "taken")),
            )
            .order_by(HelpRequest.number)
        )
        return await self._help_views(list(rows.scalars().all()))

    # ------------------------------------------------------------------ outbox
    async def enqueue(
        self,
        *,
        platform: str,
        destination: dict[str, Any],
        dest_key: str,
        body: dict[str, Any],
        now: datetime,
        dedup_key: str | None = None,
    ) -> bool:
        """Queue a message in this transaction; False if `dedup_key` was already queued."""
        scope = self._scope
        values = {
            "org_id": scope.org.id if scope else None,
            "team_id": scope.team.id if scope else None,
            "platform": platform,
            "dest_key": dest_key,
            "destination": destination,
            "body": body,
            "dedup_key": dedup_key,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        # A Core INSERT with the values as parameters of one prebuilt statement: no ORM object, no
        # unit-of-work flush, no RETURNING of the id, and a statement the compiled cache and asyncpg's
        # prepared-statement cache both recognise (issue #5: this was ~1–2.8 ms a message on PG).
        result = await self.session.execute(_outbox_insert(self._dialect(), dedup=dedup_key is not None), values)
        added = dedup_key is None or bool(result.rowcount)
        if added:
            self.enqueued += 1
        return added

    # ------------------------------------------------------------ audit reads
    async def get_org(self, platform: str, corp_key: str) -> Organisation | None:
        return (
            await self.session.execute(
                select(Organisation).where(Organisation.platform == platform, Organisation.corp_key == corp_key)
            )
        ).scalar_one_or_none()

    async def get_team(self, org: Organisation, chat_id_or_name: str) -> Team | None:
        rows = await self.session.execute(
            select(Team)
            .where(Team.org_id == org.id, or_(Team.chat_id == chat_id_or_name, Team.name == chat_id_or_name))
            .order_by(Team.chat_id != chat_id_or_name, Team.id)
        )
        return rows.scalars().first()


_OUTBOX_INSERTS: dict[tuple[str, bool], Any] = {}


def _outbox_insert(dialect: str, *, dedup: bool) -> Any:
    """The outbox INSERT for a dialect, built once; with `dedup`, a repeated dedup_key inserts nothing."""
    key = (dialect, dedup)
    stmt = _OUTBOX_INSERTS.get(key)
    if stmt is None:
        module = insert_dialect(dialect)
        stmt = module.insert(OutboxMessage.__table__)
        if dedup:
            stmt = stmt.on_conflict_do_nothing(index_elements=["dedup_key"])
        _OUTBOX_INSERTS[key] = stmt
    return stmt


# The hottest reads as statements built once with bind parameters: building an ORM select per call
# (column comparisons, cache key) cost more than executing it.
_BIND_KNOWN = (
    select(Organisation, Team, Member, Membership)
    .join(Team, and_(Team.org_id == Organisation.id, Team.chat_id == bindparam("chat_id")))
    .join(Member, and_(Member.org_id == Organisation.id, Member.user_id == bindparam("user_id")))
    .join(Membership, and_(Membership.team_id == Team.id, Membership.member_id == Member.id))
    .where(Organisation.platform == bindparam("platform"), Organisation.corp_key == bindparam("org_key"))
)
_TEAM_CUSTOMERS = select(Customer).where(
    Customer.org_id == bindparam("org_id"), Customer.team_id == bindparam("team_id")
)
_CUSTOMER_BY_NORM = _TEAM_CUSTOMERS.where(Customer.norm_name == bindparam("norm_name"))
_CUSTOMERS_OF = _TEAM_CUSTOMERS.where(
    Customer.owner_id == bindparam("member_id"), Customer.status == bindparam("status")
).order_by(Customer.next_followup_on.is_(None), Customer.next_followup_on, Customer.last_activity_at.desc())
_SHARED_WITH = (
    _TEAM_CUSTOMERS.join(Collaborator, Collaborator.customer_id == Customer.id)
    .where(Collaborator.member_id == bindparam("member_id"), Customer.status == "active")
    .order_by(Customer.next_followup_on.is_(None), Customer.next_followup_on)
)
_CUSTOMER_UPDATES: dict[tuple[str, ...], Any] = {}


def _customer_update(columns: tuple[str, ...]) -> Any:
    """UPDATE customers SET <columns> WHERE id = :customer_id, built once per set of columns."""
    stmt = _CUSTOMER_UPDATES.get(columns)
    if stmt is None:
        table = Customer.__table__
        stmt = (
            update(table)
            .where(table.c.id == bindparam("customer_id"))
            .values({name: bindparam(f"new_{name}", type_=table.c[name].type) for name in columns})
        )
        _CUSTOMER_UPDATES[columns] = stmt
    return stmt


_AUDIT_INSERT = insert(AuditLog.__table__)
_FOLLOWUP_INSERT = insert(FollowUp.__table__)
_INBOUND_INSERTS: dict[str, Any] = {}
_inbound = InboundMessage.__table__
_INBOUND_FINISH = (
    update(_inbound)
    .where(
        _inbound.c.platform == bindparam("p"),
        _inbound.c.msg_id == bindparam("m"),
        _inbound.c.status == "received",
    )
    .values(status=bindparam("new_status"), processed_at=bindparam("done_at"))
)


_INBOUND_FINISH_MANY = (
    update(_inbound)
    .where(
        _inbound.c.platform == bindparam("p"),
        _inbound.c.msg_id.in_(bindparam("ids", expanding=True)),
        _inbound.c.status == "received",
    )
    .values(status="done", processed_at=bindparam("done_at", type_=_inbound.c.processed_at.type))
    .returning(_inbound.c.msg_id)
)


def inbound_values(platform: str, msg_id: str, org_key: str, now: datetime, *, status: str,
                   payload: Any = None, lease_until: datetime | None = None) -> dict[str, Any]:
    return {"platform": platform, "msg_id": msg_id, "org_key": org_key, "received_at": now, "status": status,
            "processed_at": now if status == "done" else None, "payload": payload, "claimed_until": lease_until}


def insert_dialect(dialect: str) -> Any:
    """The SQLAlchemy dialect module whose `insert` has ON CONFLICT; PostgreSQL's only loaded when used
    (about 20 ms and 2 MB that a SQLite process never needs)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql
    from sqlalchemy.dialects import sqlite

    return sqlite


def inbound_insert(dialect: str) -> Any:
    """INSERT … ON CONFLICT (platform, msg_id) DO NOTHING, built once per dialect."""
    stmt = _INBOUND_INSERTS.get(dialect)
    if stmt is None:
        module = insert_dialect(dialect)
        stmt = module.insert(_inbound).on_conflict_do_nothing(index_elements=["platform", "msg_id"])
        _INBOUND_INSERTS[dialect] = stmt
    return stmt


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
