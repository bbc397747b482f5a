"""Customers: claiming (new, from the team's pool or the company pool), releasing, transferring,
collaborators, search, the pools, possible duplicates and a customer's detail (re-keying names when the
撞单 key's rules change: storage.rekey).

Customers belong to the organisation: a name is unique across its teams. Two reps claiming one
customer at once — of one team or of two — are decided by the unique keys and by conditional
UPDATEs, never by Python-side locks: several bot replicas may share one database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.orm import aliased

from storage.customer_search import SEARCH_LIMIT, search_many, visible_names_many
from storage.deals import OPEN, DealQueries, open_deal_exists
from storage.deferred import deferral_safe
from storage.models import AuditLog, Collaborator, Customer, Deal, FollowUp, Member, Membership, Team
from storage.prefetch import MISSING, PrefetchQueries
from storage.rekey import RekeyQueries
from storage.sql import rowcount, table_of

ClaimOutcome = Literal["created", "from_pool", "already_yours", "owned_by_other", "other_team_pool"]

FIRST_DEAL = "首单"


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
    deals: list[Deal]


class CustomerQueries(DealQueries, RekeyQueries, PrefetchQueries):
    """Customers as the acting member sees them: their team's (owned or in its pool), the company
    pool's, and those they collaborate on from another team. Another team's customer is found only by
    a claim (`org_customer_by_norm`), and then only its owner, team and claim date are told."""

    def _visible_params(self, **extra: object) -> dict[str, object]:
        actor = self.scope.actor
        return {"org_id": self.org.id, "team_id": self.team.id, "member_id": actor.id if actor else 0, **extra}

    async def customer_by_norm(self, norm_name: str) -> Customer | None:
        """The visible customer of that normalised name: the team's own, else one elsewhere in the
        organisation that the company pool or a collaboration shows.

        Two point lookups (the team's unique name, then the organisation's partial unique index) rather
        than one OR over both, which no index serves: this runs on every 跟进.
        """
        params = self._visible_params(norm_name=norm_name)
        own = await self._own_with_deals(norm_name)
        if own is not None:
            return own
        return (await self.session.execute(_ELSEWHERE_BY_NORM, params)).scalar_one_or_none()

    async def find_customer(self, norm_name: str, raw_query: str) -> tuple[Customer | None, list[Customer]]:
        """What a rep means by a name: the visible customer of exactly that normalised name (as
        `customer_by_norm`), else none and the visible customers whose names contain the query.

        The team's own costs one statement; otherwise the search answers both questions (its exact
        matches come first, the one elsewhere among them), which a 跟进 to a name the team does not
        have asks on every call.
        """
        if norm_name:
            own = await self._own_with_deals(norm_name)
            if own is not None:
                return own, []
        candidates = await self.search_customers(norm_name, raw_query)
        exact = [c for c in candidates if norm_name and c.norm_name == norm_name and c.duplicate_of_id is None]
        return (exact[0] if exact else None), candidates

    async def _own_with_deals(self, norm_name: str) -> Customer | None:
        """The team's own customer of that name; its open deals come along (the 跟进 / 赢单 / 输单 that
        asked will want them: `open_deals`). Read for the whole batch when it was (storage.prefetch)."""
        read = self.prefetched_read(("own", self.org.id, self.team.id, norm_name))
        if read is not MISSING:
            if read is None:
                return None
            own, deals = read
            self.open_deals_read[own.id] = (self.deals_mark(), list(deals))
            return own
        rows = (await self.session.execute(_TEAM_BY_NORM_WITH_DEALS, self._visible_params(norm_name=norm_name))).all()
        if not rows:
            return None
        own = rows[0][0]
        self.open_deals_read[own.id] = (self.deals_mark(), [deal for _, deal in rows if deal is not None])
        return own

    async def customer_by_id(self, customer_id: int) -> Customer | None:
        rows = await self.session.execute(_VISIBLE.where(Customer.id == customer_id), self._visible_params())
        return rows.scalar_one_or_none()

    async def org_customer_by_norm(self, norm_name: str) -> Customer | None:
        """The organisation's customer of that name, wherever it is (the original, not a duplicate)."""
        rows = await self.session.execute(
            select(Customer)
            .where(Customer.org_id == self.org.id, Customer.norm_name == norm_name)
            .order_by(Customer.duplicate_of_id.is_not(None), Customer.id)
            .limit(1)
        )
        return rows.scalar_one_or_none()

    async def org_customer_by_id(self, customer_id: int) -> Customer | None:
        rows = await self.session.execute(
            select(Customer).where(Customer.org_id == self.org.id, Customer.id == customer_id)
        )
        return rows.scalar_one_or_none()

    async def org_customer_names(self) -> list[tuple[int, str, str]]:
        """(id, normalised name, name) of every customer of the organisation: look-alikes across teams."""
        rows = await self.session.execute(
            select(Customer.id, Customer.norm_name, Customer.name).where(Customer.org_id == self.org.id)
        )
        return [(i, n, d) for i, n, d in rows.all()]

    async def team_of(self, customer: Customer) -> Team:
        return (await self.session.execute(select(Team).where(Team.id == customer.team_id))).scalar_one()

    async def search_customers(self, norm_query: str, raw_query: str, limit: int = SEARCH_LIMIT) -> list[Customer]:
        """Customers whose normalised or display name contains the query (exact matches first)."""
        asker = (self.team.id, self._actor_id(), norm_query, raw_query)
        if limit == SEARCH_LIMIT:
            read = self.prefetched_read(("search", self.org.id, *asker))
            if read is not MISSING:
                return list(read)
        return (await search_many(self.session, self.org.id, [asker], limit))[0]

    async def all_customer_names(self) -> list[tuple[int, str, str]]:
        """(id, normalised name, name) of the customers the actor sees."""
        asker = (self.team.id, self._actor_id())
        read = self.prefetched_read(("names", self.org.id, *asker))
        if read is not MISSING:
            return list(read)
        return (await visible_names_many(self.session, self.org.id, [asker]))[0]

    def _actor_id(self) -> int:
        actor = self.scope.actor
        return actor.id if actor else 0

    async def count_active_owned(self, member: Member) -> int:
        return (
            await self.session.execute(
                select(func.count())
                .select_from(Customer)
                .where(
                    Customer.org_id == self.org.id,
                    Customer.team_id == self.team.id,
                    Customer.owner_id == member.id,
                    open_deal_exists(),
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
        """Claim a new customer or take one from the team's or the company's pool.

        The database decides concurrent claims, of one team or of several: the INSERT does nothing
        when any unique key (the organisation's name, the team's name) already holds the name.
        """
        me = self.actor
        norm = norm_name[:200]
        customer = await self._team_customer_by_norm(norm)
        created = False
        if customer is None:
            values = {
                "org_id": self.org.id,
                "team_id": self.team.id,
                "name": name[:200],
                "norm_name": norm,
                "owner_id": me.id,
                "claimed_at": now,
                "last_activity_at": now,
                "company_pool": False,
                "created_at": now,
            }
            created = await self.insert_if_absent(Customer, values, ())
            customer = await self._team_customer_by_norm(norm) or await self.org_customer_by_norm(norm)
        assert customer is not None
        if created:
            # The first deal opens with the claim; the claim's audit row names it (no second row).
            deal = await self.open_deal(customer, FIRST_DEAL, now, audited=False)
            after = {"owner": me.id, "name": customer.name, "deal": deal.id}
            await self.audit("claim", "customer", customer.id, None, after, now)
            return ClaimResult("created", customer, me)
        await self.session.refresh(customer)
        if customer.owner_id == me.id:
            return ClaimResult("already_yours", customer, me)
        if customer.owner_id is None and customer.team_id != self.team.id and not customer.company_pool:
            return ClaimResult("other_team_pool", customer, None)
        if customer.owner_id is None:
            # From the team's pool, or from the company pool into this team.
            before = {"owner": None, "team": customer.team_id, "company_pool": customer.company_pool}
            taken = await self.session.execute(
                update(Customer)
                .where(
                    Customer.id == customer.id,
                    Customer.owner_id.is_(None),
                    or_(Customer.team_id == self.team.id, Customer.company_pool.is_(True)),
                )
                .values(owner_id=me.id, claimed_at=now, last_activity_at=now, team_id=self.team.id, company_pool=False)
                .execution_options(synchronize_session=False)
            )
            await self.session.refresh(customer)
            if rowcount(taken) == 1:
                after = {"owner": me.id, "team": self.team.id, "company_pool": False}
                await self.audit("claim", "customer", customer.id, before, after, now)
                if not await self.open_deals(customer):
                    # A customer lost (or won) before is worked again through a new deal.
                    await self.open_deal(customer, f"第{await self.count_deals(customer) + 1}单", now)
                return ClaimResult("from_pool", customer, me)
        owner = await self.owner_of(customer)
        return ClaimResult("owned_by_other", customer, owner)

    async def _team_customer_by_norm(self, norm_name: str) -> Customer | None:
        """This team's own row of that name (a possible duplicate included)."""
        rows = await self.session.execute(_TEAM_BY_NORM, self._visible_params(norm_name=norm_name))
        return rows.scalar_one_or_none()

    async def share_to_company_pool(self, customer: Customer, now: datetime) -> None:
        """公海 共享: the customer leaves its owner (if any) for the company pool, where any team claims it."""
        before = {"owner": customer.owner_id, "company_pool": customer.company_pool}
        if customer.owner_id is not None:
            customer.released_by_id = customer.owner_id
            customer.released_at = now
            customer.owner_id = None
            await self.session.execute(_COLLABORATORS.delete().where(_COLLABORATORS.c.customer_id == customer.id))
        customer.company_pool = True
        await self.audit("company_pool", "customer", customer.id, before, {"owner": None, "company_pool": True}, now)

    async def possible_duplicates(self) -> list[tuple[Customer, Customer, Team]]:
        """This team's customers marked as possible duplicates, with the original and its team."""
        original = aliased(Customer)
        rows = await self.session.execute(
            select(Customer, original, Team)
            .join(original, original.id == Customer.duplicate_of_id)
            .join(Team, Team.id == original.team_id)
            .where(Customer.org_id == self.org.id, Customer.team_id == self.team.id)
            .order_by(Customer.name)
        )
        return [(c, o, t) for c, o, t in rows.all()]

    async def member_in_a_team(self, member: Member) -> bool:
        """Whether the member already belongs to a team of the organisation (a collaborator from another
        team stays in their own team)."""
        rows = await self.session.execute(
            select(Membership.team_id).where(Membership.member_id == member.id).limit(1)
        )
        return rows.first() is not None

    async def release_customer(self, customer: Customer, now: datetime, action: str = "release") -> None:
        before = {"owner": customer.owner_id}
        customer.released_by_id = customer.owner_id
        customer.released_at = now
        customer.owner_id = None
        await self.session.execute(_COLLABORATORS.delete().where(_COLLABORATORS.c.customer_id == customer.id))
        await self.audit(action, "customer", customer.id, before, {"owner": None}, now)

    async def transfer_customer(self, customer: Customer, to: Member, now: datetime) -> None:
        before = {"owner": customer.owner_id}
        customer.owner_id = to.id
        customer.claimed_at = now
        customer.last_activity_at = now
        await self.session.execute(
            _COLLABORATORS.delete().where(
                _COLLABORATORS.c.customer_id == customer.id, _COLLABORATORS.c.member_id == to.id
            )
        )
        await self.audit("transfer", "customer", customer.id, before, {"owner": to.id}, now)

    # ------------------------------------------------------------ collaborators
    async def owner_of(self, customer: Customer) -> Member | None:
        """The customer's owner, or None while it sits in the public pool."""
        if customer.owner_id is None:
            return None
        return (await self.members_by_id([customer.owner_id])).get(customer.owner_id)

    async def collaborators(self, customer: Customer) -> list[Member]:
        rows = await self.session.execute(
            select(Member)
            .join(Collaborator, Collaborator.member_id == Member.id)
            .where(Collaborator.customer_id == customer.id, Member.org_id == self.org.id)
            .order_by(Collaborator.added_at)
        )
        return list(rows.scalars().all())

    async def add_collaborator(self, customer: Customer, member: Member, now: datetime) -> bool:
        added = await self.insert_if_absent(
            Collaborator,
            {"customer_id": customer.id, "member_id": member.id, "added_at": now},
            ("customer_id", "member_id"),
        )
        if added:
            await self.audit("share", "customer", customer.id, None, {"collaborator": member.id}, now)
        return added

    async def is_collaborator(self, customer: Customer, member: Member) -> bool:
        row = await self.session.execute(
            select(Collaborator.member_id).where(
                Collaborator.customer_id == customer.id, Collaborator.member_id == member.id
            )
        )
        return row.first() is not None

    # ------------------------------------------------------------------ lists
    async def customer_detail(self, customer: Customer, limit: int = 10) -> CustomerDetail:
        owner = await self.owner_of(customer)
        rows = await self.session.execute(
            select(FollowUp, Member)
            .join(Member, Member.id == FollowUp.author_id)
            .where(FollowUp.org_id == self.org.id, FollowUp.customer_id == customer.id)
            .order_by(FollowUp.created_at.desc(), FollowUp.id.desc())
            .limit(limit)
        )
        followups = [(f, m) for f, m in rows.all()]
        collaborators = await self.collaborators(customer)
        return CustomerDetail(customer, owner, collaborators, followups, await self.deals_of(customer))

    async def my_customers(self, member: Member) -> tuple[list[Customer], list[Customer], dict[int, list[Deal]]]:
        """我的: the member's customers in this team with an open deal, next follow-up first; those they
        collaborate on in any team; and each one's open deals (read with them: two statements in all)."""
        read = self.prefetched_read(("mine", self.org.id, self.team.id, member.id))
        if read is not MISSING:
            owned, shared, open_deals = read
            return list(owned), list(shared), dict(open_deals)
        params = {"org_id": self.org.id, "team_id": self.team.id, "member_id": member.id}
        deals: dict[int, list[Deal]] = {}
        lists: list[list[Customer]] = []
        for stmt in (_CUSTOMERS_OF, _SHARED_WITH):
            found: dict[int, Customer] = {}
            for customer, deal in (await self.session.execute(stmt, params)).all():
                if customer.id not in found:
                    found[customer.id] = customer
                    deals[customer.id] = []
                deals[customer.id].append(deal)
            lists.append(list(found.values()))
        return lists[0], lists[1], deals

    async def pool_customers(self, limit: int = 30) -> tuple[list[Customer], int]:
        """The team's pool and the company pool (公司公海), latest released first."""
        condition = (
            Customer.org_id == self.org.id,
            Customer.owner_id.is_(None),
            or_(Customer.team_id == self.team.id, Customer.company_pool.is_(True)),
        )
        rows = await self.session.execute(
            select(Customer)
            .where(*condition)
            .order_by(Customer.released_at.desc().nulls_last(), Customer.id)
            .limit(limit)
        )
        total = (await self.session.execute(select(func.count()).select_from(Customer).where(*condition))).scalar_one()
        return list(rows.scalars().all()), total


# The hottest reads as statements built once with bind parameters: building an ORM select per call
# (column comparisons, cache key) cost more than executing it.
_TEAM_CUSTOMERS = select(Customer).where(
    Customer.org_id == bindparam("org_id"), Customer.team_id == bindparam("team_id")
)
# What the acting member sees: the team's customers, the company pool, their collaborations elsewhere
# (searches and names: storage.customer_search).
_VISIBLE = select(Customer).where(
    Customer.org_id == bindparam("org_id"),
    or_(
        Customer.team_id == bindparam("team_id"),
        and_(Customer.company_pool.is_(True), Customer.owner_id.is_(None)),
        Customer.id.in_(select(Collaborator.customer_id).where(Collaborator.member_id == bindparam("member_id"))),
    ),
)
_TEAM_BY_NORM = _TEAM_CUSTOMERS.where(Customer.norm_name == bindparam("norm_name"))
_TEAM_BY_NORM_WITH_DEALS = (
    select(Customer, Deal)
    .outerjoin(Deal, and_(Deal.customer_id == Customer.id, Deal.status == OPEN))
    .where(Customer.org_id == bindparam("org_id"), Customer.team_id == bindparam("team_id"),
           Customer.norm_name == bindparam("norm_name"))
    .order_by(Deal.id)
)
# Elsewhere, the original only (`duplicate_of_id IS NULL` lets both databases use the partial index).
_ELSEWHERE_BY_NORM = _VISIBLE.where(
    Customer.norm_name == bindparam("norm_name"), Customer.duplicate_of_id.is_(None)
)
_OPEN_DEAL = and_(Deal.customer_id == Customer.id, Deal.status == OPEN)
_CUSTOMERS_OF = (  # each with its open deals (the customers without one are not 跟进中)
    select(Customer, Deal)
    .join(Deal, _OPEN_DEAL)
    .where(Customer.org_id == bindparam("org_id"), Customer.team_id == bindparam("team_id"),
           Customer.owner_id == bindparam("member_id"))
    .order_by(Customer.next_followup_on.is_(None), Customer.next_followup_on, Customer.last_activity_at.desc(),
              Customer.id, Deal.id)
)
_SHARED_WITH = (  # collaborations in any team of the organisation
    select(Customer, Deal)
    .join(Collaborator, Collaborator.customer_id == Customer.id)
    .join(Deal, _OPEN_DEAL)
    .where(Customer.org_id == bindparam("org_id"))
    .where(Collaborator.member_id == bindparam("member_id"))
    .order_by(Customer.next_followup_on.is_(None), Customer.next_followup_on, Customer.id, Deal.id)
)
_COLLABORATORS = table_of(Collaborator)
# Statements that cannot see the rows a unit of work defers (storage.deferred).
for _safe in (_TEAM_BY_NORM, _TEAM_BY_NORM_WITH_DEALS, _ELSEWHERE_BY_NORM, _CUSTOMERS_OF,
              _SHARED_WITH):
    deferral_safe(_safe)
