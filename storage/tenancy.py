"""Organisations, teams and members: binding a unit of work to them (first contact creates them),
and the roles and settings an admin changes.

Rows are created once and read ever after; creation is insert-if-absent, so two replicas seeing a
new team at once both end up with the one that won.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, String, and_, bindparam, join, or_, select, true
from sqlalchemy.orm import aliased

from storage.deferred import deferral_safe
from storage.models import AuditLog, Member, Membership, Organisation, Team
from storage.scope import NoTeamYet, Role, Scope, StoreBase
from storage.sql import unnest_rows, unnest_table

# Pool rules are columns of `teams`; every other team setting lives in its JSON `settings`.
TEAM_RULE_COLUMNS = ("max_active_customers", "daily_claim_limit", "cooldown_days")


class RemovedFromTeam(Exception):
    """The sender was taken out of this team (移除): their messages in its group are not run.

    Admins are organisation-wide and never locked out of a group by it.
    """

    def __init__(self, team: Team) -> None:
        super().__init__(team.name)
        self.team = team


def _role_of(actor: Member, membership: Membership, admin_ids: frozenset[str]) -> Role:
    """Admin by flag or by SALESBOT_ADMINS, else the member's role in this team."""
    if actor.is_admin or actor.user_id in admin_ids:
        return "admin"
    return "lead" if membership.role == "lead" else "rep"


class TenancyQueries(StoreBase):
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
                role = _role_of(actor, membership, self.admin_ids_of(org_key))
                if membership.left_at is not None and role != "admin":
                    raise RemovedFromTeam(team)
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
                    .where(Team.org_id == org.id, Membership.member_id == actor.id, Membership.left_at.is_(None))
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
            role = _role_of(actor, membership, self.admin_ids_of(org_key))
            if membership.left_at is not None and role != "admin":
                raise RemovedFromTeam(team)
        self._scope = Scope(org=org, team=team, actor=actor, role=role, msg_id=msg_id)
        return self._scope

    async def prefetch_bindings(self, senders: Sequence[tuple[str, str, str, str]]) -> None:
        """Read the (platform, org_key, chat_id, user_id) senders of a batch of messages in one SELECT per
        organisation, so that binding each of them costs no round trip (`_bind_known` looks here first).

        Only rows that exist are kept: a sender seen for the first time, perhaps created by an earlier
        message of the batch, takes the usual path. Senders read already (with their messages' finish,
        storage.inbound) are not read again.
        """
        by_org: dict[tuple[str, str], set[tuple[str, str]]] = {}
        for platform, org_key, chat_id, user_id in senders:
            if (platform, org_key, chat_id, user_id) not in self.prefetched:
                by_org.setdefault((platform, org_key), set()).add((chat_id, user_id))
        for (platform, org_key), pairs in by_org.items():
            if len(pairs) < 2:
                continue  # one sender: its own SELECT costs the same
            statement: Any
            if self.dialect == "postgresql":
                ordered = sorted(pairs)
                statement = _bind_pairs()
                params = {"platform": platform, "org_key": org_key,
                          **unnest_rows("pairs", ("chat_id", "user_id"), ordered)}
            else:
                statement = _BIND_MANY
                params = {"platform": platform, "org_key": org_key, "chats": sorted({c for c, _ in pairs}),
                          "users": sorted({u for _, u in pairs})}
            for row in (await self.session.execute(statement, params)).all():
                if (row[1].chat_id, row[2].user_id) in pairs:
                    self.keep_binding(platform, org_key, row)

    async def _bind_known(
        self, platform: str, org_key: str, chat_id: str, user_id: str, user_name: str | None
    ) -> tuple[Organisation, Team, Member, Membership] | None:
        """Organisation, team, member and membership in one round trip, when all four exist.

        That is every message but a team's or member's first, so the common case costs one SELECT
        instead of four insert-if-absent + select pairs (none when the batch's senders were prefetched);
        anything missing returns None and `bind` takes the creating path.
        """
        row = self.prefetched.get((platform, org_key, chat_id, user_id))
        if row is None:
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

    async def _get_or_create(
        self, query: Select[Any], model: type, values: dict[str, Any], conflict: Sequence[str]
    ) -> Any:
        """Select first and insert only when missing: rows are created once and read ever after.

        The insert ignores conflicts, so two replicas creating the same row at once both end up with
        the one that won; the second select sees it (READ COMMITTED takes a new snapshot per statement).
        """
        found = (await self.session.execute(query)).scalar_one_or_none()
        if found is not None:
            return found
        await self.insert_if_absent(model, values, conflict)
        return (await self.session.execute(query)).scalar_one()

    async def ensure_org(self, platform: str, corp_key: str, now: datetime) -> Organisation:
        org: Organisation = await self._get_or_create(
            select(Organisation).where(Organisation.platform == platform, Organisation.corp_key == corp_key),
            Organisation,
            {"platform": platform, "corp_key": corp_key, "name": corp_key, "timezone": self.default_timezone,
             "name_key_version": self.name_key_version, "created_at": now},
            ("platform", "corp_key"),
        )
        return org

    async def ensure_team(self, org: Organisation, chat_id: str, name: str, now: datetime) -> Team:
        team: Team = await self._get_or_create(
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
        return team

    async def ensure_member(self, org: Organisation, user_id: str, name: str, now: datetime) -> Member:
        member: Member = await self._get_or_create(
            select(Member).where(Member.org_id == org.id, Member.user_id == user_id),
            Member,
            {"org_id": org.id, "user_id": user_id, "name": name[:64], "is_admin": False, "active": True,
             "created_at": now},
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

    async def set_team_role(self, member: Member, role: Literal["rep", "lead"], now: datetime) -> str | None:
        """An admin giving someone a role in the team also takes back a member removed from it."""
        membership = await self.ensure_membership(self.team, member, now)
        before = membership.role
        membership.role = role
        rejoined = membership.left_at is not None
        membership.left_at = None
        after: dict[str, Any] = {"role": role, "rejoined": True} if rejoined else {"role": role}
        await self.audit("set_role", "member", member.id, {"role": before}, after, now)
        return before

    async def team_membership(self, member: Member) -> Membership | None:
        return (
            await self.session.execute(
                select(Membership).where(Membership.team_id == self.team.id, Membership.member_id == member.id)
            )
        ).scalar_one_or_none()

    async def leave_team(self, member: Member, now: datetime) -> bool:
        """Mark `member` as out of the bound team (移除); False when they were not in it (any more)."""
        membership = await self.team_membership(member)
        if membership is None or membership.left_at is not None:
            return False
        membership.left_at = now
        await self.audit("remove_member", "member", member.id, {"role": membership.role}, {"left": True}, now)
        return True

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
            .where(
                Membership.team_id == self.team.id,
                Membership.role == "lead",
                Membership.left_at.is_(None),
                Member.active.is_(True),
            )
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
            if key in TEAM_RULE_COLUMNS:
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


# One sender's organisation, team, member and membership, for :chat_id and :user_id; the caller names the
# organisation (storage.inbound joins it to a message's finish).
SENDER = (
    join(Organisation, Team, and_(Team.org_id == Organisation.id, Team.chat_id == bindparam("chat_id")))
    .join(Member, and_(Member.org_id == Organisation.id, Member.user_id == bindparam("user_id")))
    .join(Membership, and_(Membership.team_id == Team.id, Membership.member_id == Member.id))
)
# The hottest read as a statement built once with bind parameters: building an ORM select per call
# (column comparisons, cache key) cost more than executing it.
_BIND_KNOWN = (
    select(Organisation, Team, Member, Membership)
    .select_from(SENDER)
    .where(Organisation.platform == bindparam("platform"), Organisation.corp_key == bindparam("org_key"))
)
# A batch's senders: every (team, member) pair of these chats and users (the caller keeps those it asked for).
_BIND_MANY = (
    select(Organisation, Team, Member, Membership)
    .join(Team, and_(Team.org_id == Organisation.id, Team.chat_id.in_(bindparam("chats", expanding=True))))
    .join(Member, and_(Member.org_id == Organisation.id, Member.user_id.in_(bindparam("users", expanding=True))))
    .join(Membership, and_(Membership.team_id == Team.id, Membership.member_id == Member.id))
    .where(Organisation.platform == bindparam("platform"), Organisation.corp_key == bindparam("org_key"))
)


def sender_lookups(chat_id: Any, user_id: Any, platform: Any, org_key: Any) -> tuple[Any, Any]:
    """The team of `chat_id` and the member of `user_id` (columns of the senders' relation) in the organisation
    (`platform`, `org_key`), as lateral lookups by their unique keys: a few index probes per sender even
    without statistics yet. LIMIT 1 (each is unique anyway) keeps PostgreSQL from flattening them into one
    join it would order itself."""
    org = select(Organisation.id).where(Organisation.platform == platform, Organisation.corp_key == org_key)
    org_id = org.scalar_subquery()
    team = aliased(Team, select(Team).where(Team.org_id == org_id, Team.chat_id == chat_id).limit(1).lateral("team"))
    member = aliased(Member, select(Member).where(Member.org_id == org_id, Member.user_id == user_id).limit(1)
                     .lateral("member"))
    return team, member


@functools.cache
def _bind_pairs() -> Any:
    """PostgreSQL's `_BIND_MANY`: the senders as (chat, user) pairs of two arrays, one statement for any
    number of them (IN lists made one per count), each pair read by unique keys (`sender_lookups`), not
    every team of the organisation against every sender."""
    pairs = unnest_table("pairs", chat_id=String, user_id=String)
    team, member = sender_lookups(pairs.c.chat_id, pairs.c.user_id, bindparam("platform"), bindparam("org_key"))
    statement: Any = (
        select(Organisation, team, member, Membership)
        .select_from(pairs)
        .join(team, true())
        .join(member, true())
        .join(Organisation, Organisation.id == team.org_id)
        .join(Membership, and_(Membership.team_id == team.id, Membership.member_id == member.id))
    )
    return deferral_safe(statement)


# Statements that cannot see the rows a unit of work defers (storage.deferred).
for _safe in (_BIND_KNOWN, _BIND_MANY):
    deferral_safe(_safe)
