"""The unit of work's scope and the base every query area of `Store` builds on.

A Store lives for one unit of work (one transaction). After `bind()` it is scoped to one
organisation, one team and one acting member, and every query it runs filters on that organisation
— so a handler cannot read another organisation's rows even by mistake.

`StoreBase` holds what every area needs: the session, the scope, the audit trail, insert-if-absent,
and the two lookups several areas share (members by id, the team's customers). The areas
(storage.tenancy, storage.customers, …) are mixins of `StoreBase` that `storage.store.Store` combines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, event, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from storage import changes, deferred
from storage.admins import admin_ids_for
from storage.models import AuditLog, Customer, Member, Organisation, Team
from storage.sql import dialect_of, insert_for, rowcount, table_of

Role = Literal["rep", "lead", "admin"]
DEALS = ("deals",)


@dataclass
class Scope:
    org: Organisation
    team: Team
    actor: Member | None
    role: Role = "rep"
    msg_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class UnitOfWorkSession(Session):
    """The session a unit of work runs on: it counts the statements that may have written (`StoreBase.
    write_mark`), so a command refused before writing anything needs no rollback."""


@event.listens_for(UnitOfWorkSession, "do_orm_execute")
def _count_statement(state: ORMExecuteState) -> None:
    session = state.session
    if deferred.needs_flush(session, state.statement):
        deferred.flush_now(session)
    if not state.is_select and not session.info.get(deferred.WRITING):  # INSERT, UPDATE, DELETE, or text
        session.info["writes"] = session.info.get("writes", 0) + 1
        name = getattr(getattr(state.statement, "table", None), "name", None)
        changes.note_statement(session, (name,) if isinstance(name, str) else None, state.statement)


@event.listens_for(UnitOfWorkSession, "before_flush")
def _note_flush(session: Session, context: UOWTransaction, instances: object) -> None:
    changes.note_flush(session)
    # Rows waiting for COMMIT go first: a follow-up's deferred UPDATE of a customer must not land after
    # (and undo) a later change the ORM is about to write to the same row.
    if deferred.waiting(session):
        deferred.flush_now(session)


@event.listens_for(UnitOfWorkSession, "after_flush")
def _count_flush(session: Session, context: UOWTransaction) -> None:
    session.info["writes"] = session.info.get("writes", 0) + 1


class NotBound(RuntimeError):
    pass


class NoTeamYet(LookupError):
    """A private chat from someone who has never spoken in a team's group: we cannot scope them."""


class StoreBase:
    def __init__(
        self,
        session: AsyncSession,
        *,
        default_timezone: str = "Asia/Shanghai",
        name_key_version: int = 0,
        board: Any = None,
        chart_font: str | None = None,
        admin_entries: tuple[str, ...] = (),
    ) -> None:
        self.session = session
        self._scope: Scope | None = None
        self.enqueued = 0
        self.enqueued_keys: set[str] = set()  # their destinations: the outbox worker's claim looks only there
        # The zone a newly seen organisation starts with (SALESBOT_TIMEZONE); admins change it later.
        self.default_timezone = default_timezone
        # The name-key version a newly seen organisation's keys are made with (handlers.names.NAME_KEY_VERSION).
        self.name_key_version = name_key_version
        # The web board's public URL and configured secret (storage.board_links.BoardConfig), for `看板 链接`.
        self.board = board
        # The CJK font charts are drawn with, found once at start (bot.charts); None: text-only reports.
        self.chart_font = chart_font
        # SALESBOT_ADMINS as configured (storage.admins): admins besides the members flagged in the database.
        self.admin_entries = admin_entries
        # (platform, org_key, chat_id, user_id) → org, team, member, membership: a batch's senders read at
        # once (storage.tenancy.prefetch_bindings); identity-mapped objects, so they stay what a fresh
        # SELECT in this transaction would return.
        self.prefetched: dict[tuple[str, str, str, str], tuple[Any, Any, Any, Any]] = {}
        # customer id → (where deals stood, open deals) read together with the customer (storage.customers)
        self.open_deals_read: dict[int, tuple[changes.Mark, list[Any]]] = {}
        # Reads made once for a batch of commands, each used while it holds (storage.prefetch).
        self.batch_reads: dict[tuple[Any, ...], Any] = {}

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

    def admin_ids_of(self, org_key: str) -> frozenset[str]:
        """The user ids SALESBOT_ADMINS makes admins of organisation `org_key`."""
        return admin_ids_for(self.admin_entries, org_key)

    def org_admin_ids(self) -> frozenset[str]:
        """The user ids SALESBOT_ADMINS makes admins of the bound organisation."""
        return self.admin_ids_of(self.org.corp_key)

    def is_admin(self, member: Member) -> bool:
        """An admin of the bound organisation: flagged (`salesbot admin add`) or listed in SALESBOT_ADMINS.
        Admins are managers wherever the two are told apart: they read the reports, they are not counted in them."""
        return bool(member.is_admin) or member.user_id in self.org_admin_ids()

    def keep_binding(self, platform: str, org_key: str, row: Sequence[Any]) -> None:
        """Keep a sender's (organisation, team, member, membership), read ahead, for `bind` to find."""
        org, team, member, membership = row
        self.prefetched[(platform, org_key, team.chat_id, member.user_id)] = (org, team, member, membership)

    def unbind(self) -> None:
        """Forget the scope, so the next message of a batch sharing this transaction binds afresh."""
        self._scope = None

    def bind_team(self, org: Organisation, team: Team) -> Scope:
        """Scope to a team with no acting member (scheduled jobs, operator commands)."""
        self._scope = Scope(org=org, team=team, actor=None, role="admin")
        return self._scope

    # -------------------------------------------------------------- writes
    def write_mark(self) -> int:
        """A mark to ask `wrote_since` about later."""
        return int(self.session.info.get("writes", 0))

    def deals_mark(self) -> changes.Mark:
        """Where the deals table stands, for `open_deals_read` (storage.changes)."""
        return changes.mark(self.session.sync_session, DEALS)

    def wrote_since(self, mark: int) -> bool:
        """Whether anything may have been written (or changed in memory, to be flushed) since `mark`:
        a refusal after none leaves nothing to roll back. Counted by `UnitOfWorkSession`."""
        session = self.session
        return self.write_mark() != mark or bool(session.new or session.dirty or session.deleted)

    # -------------------------------------------------------------- helpers
    @property
    def dialect(self) -> str:
        return dialect_of(self.session)

    async def insert_if_absent(self, model: type, values: dict[str, Any], conflict: Sequence[str]) -> bool:
        """INSERT … ON CONFLICT (conflict) DO NOTHING: True when this call created the row.

        The database decides races (two replicas, two reps) through the unique key named by `conflict`.
        """
        result = await self.session.execute(insert_for(self.dialect, table_of(model), conflict), values)
        return bool(rowcount(result))

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
        # One prebuilt Core INSERT, deferred to the end of the unit of work (storage.deferred): a batch
        # of commands writes its audit rows in one round trip.
        deferred.defer(
            self.session,
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

    # ------------------------------------------------------- shared lookups
    async def members_by_id(self, ids: Sequence[int]) -> dict[int, Member]:
        if not ids:
            return {}
        rows = await self.session.execute(
            select(Member).where(Member.org_id == self.org.id, Member.id.in_(set(ids)))
        )
        return {m.id: m for m in rows.scalars().all()}

    def team_customers(self) -> Select[Customer]:
        """SELECT the bound team's customers (add conditions and order)."""
        return select(Customer).where(Customer.org_id == self.org.id, Customer.team_id == self.team.id)


_AUDIT_INSERT = deferred.deferral_safe(insert(table_of(AuditLog)))
