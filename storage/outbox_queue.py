"""The outbox as a queue: claim due rows, record what happened to them, report on them.

This is the SQL half of `bot.outbox.OutboxWorker`. It keeps two promises:

* **No message is sent twice by two workers.** A row is handed out only while its status is `pending`, or
  `sending` with an expired lease (the worker that held it died). On PostgreSQL the claim locks rows with
  `FOR UPDATE SKIP LOCKED`, so replicas claiming at the same moment pass each other instead of queueing or
  taking the same row; on SQLite every write transaction is `BEGIN IMMEDIATE` (storage.engine), which
  serialises claims outright.
* **Order per destination.** Only the *head* of a destination (its oldest row still pending or sending) can
  be claimed, and the rows behind it only together with it. While a head is in flight or backing off, the
  destination is blocked for every worker. Permanently failed rows do not block (one over-long message
  must not silence a group forever).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import and_, any_, bindparam, case, exists, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from storage.engine import is_sqlite
from storage.models import Organisation, OutboxMessage, Team
from storage.sql import one_of, rowcount, status_in

if TYPE_CHECKING:
    from storage.direct import Direct

ACTIVE = ("pending", "sending")


@dataclass(frozen=True)
class ClaimedRow:
    """One row a worker now holds a lease on."""

    id: int
    platform: str
    dest_key: str
    destination: dict[str, Any]
    body: dict[str, Any]
    attempts: int
    # The team the row was queued for and its settings as claimed: durable "push broken" marks live
    # there, and reading them with the claim saves a query per destination.
    team_id: int | None = None
    team_settings: dict[str, Any] | None = None


@dataclass(frozen=True)
class Retry:
    id: int
    next_attempt_at: datetime
    error: str | None  # None keeps the previous last_error (a local rate-limit deferral is no error)
    count_attempt: bool = True


@dataclass(frozen=True)
class Failure:
    id: int
    error: str


@dataclass
class Outcome:
    """What happened to a claimed batch, applied in one transaction by `OutboxQueue.finish`."""

    sent: list[int]
    retries: list[Retry]
    failures: list[Failure]
    released: list[int]

    @classmethod
    def empty(cls) -> Outcome:
        return cls([], [], [], [])


@dataclass(frozen=True)
class OutboxStatus:
    counts: dict[str, int]
    recent_errors: list[tuple[int, str, str, int, datetime | None, str]]  # id, status, dest_key, attempts, when, error


def _active(row: Any) -> Any:
    """Still to send: the predicate of the partial indexes `ix_outbox_active_dest` (and within `ix_outbox_unsent`)."""
    return status_in(row.status, *ACTIVE)


def _claimable(row: Any, now: Any) -> Any:
    return or_(
        and_(status_in(row.status, "pending"), row.next_attempt_at <= now),
        and_(status_in(row.status, "sending"), row.lease_until <= now),
    )


def _is_head(row: Any, pg: bool, keyed: bool = False) -> Any:
    """`row` is its destination's oldest active row: one aggregate over the active rows, computed once.

    (Not "no earlier active row": as an anti-join that is re-read per candidate, and a queue table's
    statistics, taken between bursts, invite the planner to nest those reads — a claim of 100 heads then
    read the whole backlog 100 times.) On PostgreSQL the heads go in as an array, so the candidates are
    looked up by primary key whatever the plan. `keyed` (PostgreSQL): only the destinations bound as
    `keys`, read through `ix_outbox_active_dest`.
    """
    head = aliased(OutboxMessage)
    heads = select(func.min(head.id)).where(_active(head)).group_by(head.dest_key)
    if keyed:
        heads = heads.where(one_of(head.dest_key, "keys", True))
    if pg:
        return row.id == any_(func.array(heads.scalar_subquery()))
    return row.id.in_(heads)


# The claim's statements, built once: the worker claims many times a second under load, and building
# these (an aliased self-join, correlated EXISTS) cost more than running them. PostgreSQL leases its heads
# in one statement (`_LEASE_HEADS_PG`); SQLite selects them (`_HEADS`), its BEGIN IMMEDIATE serialising
# claims. Followers are indexed [pg]: PostgreSQL locks what it reads (SKIP LOCKED).
def _claim_statements() -> tuple[Any, dict[bool, Any], Any, Any, Any]:
    o = OutboxMessage
    later = aliased(OutboxMessage)
    # Whether a head has rows queued behind it: when none has, the followers query is skipped.
    has_later = exists().where(later.dest_key == o.dest_key, later.id > o.id, _active(later))
    now = bindparam("now", type_=o.next_attempt_at.type)
    heads = (
        select(o.id, o.dest_key, has_later.label("has_later"))
        .where(_active(o), _claimable(o, now), _is_head(o, pg=False))
        .order_by(o.id)
        .limit(bindparam("batch"))
    )
    followers = (
        select(o.id, o.dest_key, o.status, o.next_attempt_at, o.lease_until)
        .where(o.dest_key.in_(bindparam("keys", expanding=True)), _active(o))
        .order_by(o.dest_key, o.id)
    )
    lease = (
        update(o)
        .where(o.id.in_(bindparam("ids", expanding=True)))
        .values(status="sending", lease_until=bindparam("lease_until", type_=o.lease_until.type))
    )
    claimed = (
        select(o.id, o.platform, o.dest_key, o.destination, o.body, o.attempts, Team.id.label("tid"), Team.settings)
        .outerjoin(Team, Team.id == o.team_id)
        .where(o.id.in_(bindparam("ids", expanding=True)))
        .order_by(o.id)
    )
    return (
        heads,
        {False: followers, True: followers.with_for_update(skip_locked=True, of=o)},
        lease,
        claimed,
        {keyed: _lease_heads_pg(has_later, keyed) for keyed in (False, True)},
    )


def _lease_heads_pg(has_later: Any, keyed: bool) -> Any:
    """PostgreSQL: lease the heads and return them in one statement (UPDATE … WHERE id IN (SELECT … FOR
    UPDATE SKIP LOCKED) RETURNING …), the team's settings read by a subquery.

    `keyed`: only the heads of the destinations bound as `keys` (those a commit just queued for), found
    through `ix_outbox_active_dest`. The unkeyed claim reads the partial indexes whole, and a settled row
    leaves its entries there, dead, until VACUUM (a bitmap scan does not mark them): it reads every row
    settled since (bot.outbox_wakes has the figures); keyed, a few destinations' entries."""
    o = OutboxMessage
    now = bindparam("now", type_=o.next_attempt_at.type)
    if keyed:
        # Only the heads' primary keys to look up: said as a CASE, "claimable" matches no partial index,
        # so no plan (a generic one knows nothing of `keys`) can read `ix_outbox_unsent` instead.
        claimable = case((o.status == "pending", o.next_attempt_at <= now),
                         (o.status == "sending", o.lease_until <= now), else_=false())
        where = [claimable, _is_head(o, pg=True, keyed=True)]
    else:
        where = [_active(o), _claimable(o, now), _is_head(o, pg=True)]
    head_ids = select(o.id).where(*where).order_by(o.id).limit(bindparam("batch")).with_for_update(skip_locked=True)
    return (
        update(o)
        .where(o.id.in_(head_ids.scalar_subquery()))
        .values(status="sending", lease_until=bindparam("lease_until", type_=o.lease_until.type))
        .returning(
            o.id, o.platform, o.dest_key, o.destination, o.body, o.attempts, o.team_id.label("tid"),
            select(Team.settings).where(Team.id == o.team_id).scalar_subquery().label("settings"),
            has_later.label("has_later"),
        )
    )


_HEADS, _FOLLOWERS, _LEASE, _CLAIMED, _LEASE_HEADS_PG = _claim_statements()
# The rows queued behind what a worker holds of one destination, for merging (`claim_behind`).
_BEHIND = (
    select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.next_attempt_at, OutboxMessage.lease_until)
    .where(OutboxMessage.dest_key == bindparam("key"), OutboxMessage.id > bindparam("after"),
           _active(OutboxMessage))
    .order_by(OutboxMessage.id)
    .limit(bindparam("limit"))
)
_MARK_SENT = {  # by dialect (PostgreSQL or not): the ids as one array there, one statement for any count
    postgres: update(OutboxMessage)
    .where(one_of(OutboxMessage.id, "ids", postgres), OutboxMessage.status == "sending")
    .values(status="sent", sent_at=bindparam("now", type_=OutboxMessage.sent_at.type), lease_until=None,
            attempts=OutboxMessage.attempts + 1)
    for postgres in (False, True)
}


def _is_due(row: Any, now: datetime) -> bool:
    return bool((row.status == "pending" and row.next_attempt_at <= now) or (
        row.status == "sending" and row.lease_until is not None and row.lease_until <= now
    ))


def _next_due_statement(pg: bool, later: bool) -> Any:
    """Earliest due head and earliest lease expiry (`later`: of those after `after`), in one round trip."""
    o = OutboxMessage
    pending_where = [status_in(o.status, "pending"), _is_head(o, pg)]
    leased_where = [status_in(o.status, "sending")]
    if later:
        after = bindparam("after", type_=o.next_attempt_at.type)
        pending_where.append(o.next_attempt_at > after)
        leased_where.append(o.lease_until > after)
    pending = select(func.min(o.next_attempt_at)).where(*pending_where).scalar_subquery()
    leased = select(func.min(o.lease_until)).where(*leased_where).scalar_subquery()
    return select(pending, leased)


_NEXT_DUE = {(pg, later): _next_due_statement(pg, later) for pg in (False, True) for later in (False, True)}


async def _followers(
    session: Any, heads: Sequence[Any], now: datetime, room: int, per_destination: int, pg: bool
) -> list[int]:
    """Ids of the due rows right behind `heads` (contiguous, at most `per_destination` per destination)."""
    head_of = {h.dest_key: h.id for h in heads}
    taken: dict[str, int] = {}
    blocked: set[str] = set()
    ids: list[int] = []
    for row in (await session.execute(_FOLLOWERS[pg], {"keys": list(head_of)})).all():
        if room <= 0:
            break
        if row.id <= head_of[row.dest_key] or row.dest_key in blocked:
            continue
        if not _is_due(row, now) or taken.get(row.dest_key, 1) >= per_destination:
            blocked.add(row.dest_key)  # keep each destination's claim contiguous
            continue
        taken[row.dest_key] = taken.get(row.dest_key, 1) + 1
        ids.append(row.id)
        room -= 1
    return ids


class _Head(NamedTuple):
    """A row `_LEASE_HEADS_PG` returns, in its RETURNING order."""

    id: int
    platform: str
    dest_key: str
    destination: Any
    body: Any
    attempts: int
    tid: int | None
    settings: Any
    has_later: bool


def _claimed(r: Any) -> ClaimedRow:
    return ClaimedRow(r.id, r.platform, r.dest_key, r.destination, r.body, r.attempts, r.tid,
                      dict(r.settings or {}) if r.tid is not None else None)


class OutboxQueue:
    """Claims and settles outbox rows, and answers a deliverer's send-time lookups. Stateless apart from
    the engine; `Database.outbox` is the process's one instance."""

    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession],
                 direct: Direct | None = None) -> None:
        self.engine = engine
        self.sessions = sessions
        self.is_sqlite = is_sqlite(engine)
        self.direct = direct  # PostgreSQL: the autocommitted claim and settle (storage.direct)

    async def claim(
        self, now: datetime, *, lease_seconds: float, batch_size: int, per_destination: int,
        dest_keys: Collection[str] | None = None,
    ) -> list[ClaimedRow]:
        """Lease up to `batch_size` due rows, at most `per_destination` consecutive rows per destination.

        Step 1 locks the *heads* of destinations (SKIP LOCKED on PostgreSQL): a destination whose head
        another worker is claiming right now is skipped entirely, and the `NOT EXISTS` check makes every
        row behind an unsettled head invisible, so a second worker can never start on row N+1.
        Step 2 takes the followers of the heads we locked.

        `dest_keys` (PostgreSQL; SQLite claims everything due): only those destinations' rows.
        """
        pg = not self.is_sqlite
        lease_until = now + timedelta(seconds=lease_seconds)
        if pg:
            # One autocommitted statement leases the heads and returns them: heads are usually all
            # there is (one reply per chat), and five round trips become one. Their followers cannot
            # be taken by anyone else meanwhile (their head is active), so they come in a second step.
            params: dict[str, Any] = {"now": now, "batch": batch_size, "lease_until": lease_until}
            if dest_keys is not None:
                params["keys"] = list(dest_keys)
            statement = _LEASE_HEADS_PG[dest_keys is not None]
            rows: list[Any] = [_Head(*r) for r in await self._direct().fetch(statement, params)]
            if not rows:
                return []
            followed = [h for h in rows if h.has_later]
            if per_destination > 1 and len(rows) < batch_size and followed:
                async with self.sessions() as session, session.begin():
                    ids = await _followers(session, followed, now, batch_size - len(rows), per_destination, pg)
                    if ids:
                        await session.execute(_LEASE, {"ids": ids, "lease_until": lease_until})
                        rows += (await session.execute(_CLAIMED, {"ids": ids})).all()
            rows.sort(key=lambda r: r.id)
        else:
            async with self.sessions() as session, session.begin():
                heads = (await session.execute(_HEADS, {"now": now, "batch": batch_size})).all()
                if not heads:
                    return []
                ids = [h.id for h in heads]
                followed = [h for h in heads if h.has_later]
                if per_destination > 1 and len(ids) < batch_size and followed:
                    ids += await _followers(session, followed, now, batch_size - len(ids), per_destination, pg)
                await session.execute(_LEASE, {"ids": ids, "lease_until": lease_until})
                rows = list((await session.execute(_CLAIMED, {"ids": ids})).all())
        return [_claimed(r) for r in rows]

    def _direct(self) -> Direct:
        assert self.direct is not None, "PostgreSQL's queue is built with its Database's Direct"
        return self.direct

    async def claim_behind(
        self, dest_key: str, after_id: int, now: datetime, *, lease_seconds: float, limit: int
    ) -> list[ClaimedRow]:
        """Lease the due rows right behind `after_id` of a destination whose rows up to it this worker holds.

        The outbox worker asks for them when the destination is saturated and it merges what waits into one
        message. Nobody else can hold them: rows behind an unsettled head are never claimable (see claim).
        Contiguous like a claim's followers: the first row not due (backing off) ends the run.
        """
        async with self.sessions() as session, session.begin():
            # Locked, not skipped: a row skipped here would be overtaken by the rows behind it.
            statement = _BEHIND if self.is_sqlite else _BEHIND.with_for_update()
            ids: list[int] = []
            for row in (await session.execute(statement, {"key": dest_key, "after": after_id, "limit": limit})).all():
                if not _is_due(row, now):
                    break
                ids.append(row.id)
            if not ids:
                return []
            await session.execute(_LEASE, {"ids": ids, "lease_until": now + timedelta(seconds=lease_seconds)})
            rows = (await session.execute(_CLAIMED, {"ids": ids})).all()
        return [_claimed(r) for r in rows]

    async def finish(self, outcome: Outcome, now: datetime) -> None:
        """Settle a batch in one transaction: sent, retry later, failed, or handed back untouched.

        Updates are conditional on `status = 'sending'` so that a row someone requeued by hand meanwhile
        is not overwritten.
        """
        o = OutboxMessage
        statements: list[tuple[Any, dict[str, Any]]] = []
        if outcome.sent:
            statements.append((_MARK_SENT[not self.is_sqlite], {"ids": outcome.sent, "now": now}))
        if outcome.released:
            statements.append(
                (
                    update(o)
                    .where(o.id.in_(outcome.released), o.status == "sending")
                    .values(status="pending", lease_until=None),
                    {},
                )
            )
        for retry in outcome.retries:
            values: dict[str, Any] = {
                "status": "pending",
                "lease_until": None,
                "next_attempt_at": retry.next_attempt_at,
                "attempts": o.attempts + (1 if retry.count_attempt else 0),
            }
            if retry.error is not None:
                values["last_error"] = retry.error[:2000]
            statements.append((update(o).where(o.id == retry.id, o.status == "sending").values(**values), {}))
        for failure in outcome.failures:
            statements.append((
                update(o)
                .where(o.id == failure.id, o.status == "sending")
                .values(status="failed", lease_until=None, last_error=failure.error[:2000], attempts=o.attempts + 1),
                {},
            ))
        if len(statements) == 1 and outcome.sent and not self.is_sqlite:
            # The usual outcome ("all sent") is one statement: autocommit it (one round trip, not three).
            await self._direct().fetch(*statements[0])
            return
        async with self.sessions() as session, session.begin():
            for statement, params in statements:
                await session.execute(statement, params)

    async def fail_destination(self, dest_key: str, error: str, now: datetime) -> int:
        """Fail every pending row of a destination the platform called broken (e.g. robot removed)."""
        o = OutboxMessage
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                update(o)
                .where(o.dest_key == dest_key, o.status == "pending")
                .values(status="failed", last_error=error[:2000])
            )
            return rowcount(result)

    async def next_due(self, after: datetime | None = None) -> datetime | None:
        """When the earliest destination head becomes due or the earliest lease expires (`after`: the
        earliest such time after it — what a worker that has just claimed everything due must wait for).

        Only heads count: rows queued behind a busy or backing-off head are "due" but not claimable, and
        waking for them would spin.
        """
        statement = _NEXT_DUE[not self.is_sqlite, after is not None]
        params = {} if after is None else {"after": after}
        if self.is_sqlite:
            async with self.sessions() as session:
                pending, leased = (await session.execute(statement, params)).one()
        else:
            [(pending, leased)] = await self._direct().fetch(statement, params)
        times = [t for t in (pending, leased) if t is not None]
        return min(times) if times else None

    async def reclaim_all_leases(self) -> int:
        """Hand every `sending` row back — only safe when this is the sole worker (SQLite, at start-up)."""
        o = OutboxMessage
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                update(o).where(o.status == "sending").values(status="pending", lease_until=None)
            )
            return rowcount(result)

    async def status(self, errors: int = 10) -> OutboxStatus:
        o = OutboxMessage
        async with self.sessions() as session:
            counts = {s: 0 for s in ("pending", "sending", "sent", "failed")}
            for status, count in (await session.execute(select(o.status, func.count()).group_by(o.status))).all():
                counts[status] = int(count)
            recent = (
                await session.execute(
                    select(o.id, o.status, o.dest_key, o.attempts, o.next_attempt_at, o.last_error)
                    .where(o.last_error.is_not(None), o.status.in_(("pending", "failed")))
                    .order_by(o.id.desc())
                    .limit(errors)
                )
            ).all()
        return OutboxStatus(counts, [tuple(r) for r in recent])  # type: ignore[misc]

    async def requeue(self, now: datetime, ids: Iterable[int] = (), *, all_failed: bool = False) -> int:
        """Put failed rows (by id, or all of them) back to pending, due now, with a fresh attempt count."""
        o = OutboxMessage
        condition = o.status == "failed"
        id_list: Sequence[int] = list(ids)
        if not all_failed:
            if not id_list:
                return 0
            condition = and_(o.id.in_(id_list), o.status.in_(("failed", "pending")))
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                update(o)
                .where(condition)
                .values(status="pending", attempts=0, next_attempt_at=now, lease_until=None)
            )
            return rowcount(result)

    async def statuses(self) -> dict[int, str]:
        """id → status of every row; for tests and the benchmark."""
        o = OutboxMessage
        async with self.sessions() as session:
            return {r.id: r.status for r in (await session.execute(select(o.id, o.status))).all()}

    # ------------------------------------------------------------ send-time lookups
    # A WeCom process may serve several corps; a row queued without a corp in its destination (schedules,
    # notices, rows from before multi-corp) is sent through the corp of the organisation it was queued for.
    # A "team" destination is resolved through the team's current settings (its group webhook or custom
    # robot), so an admin's new webhook applies to messages already queued.
    async def org_key_of_row(self, row_id: int, platform: str) -> str | None:
        """The corp key (WeCom CorpID, DingTalk corp id …) of the row's organisation; None without one."""
        async with self.sessions() as session:
            return (
                await session.execute(
                    select(Organisation.corp_key)
                    .join(OutboxMessage, OutboxMessage.org_id == Organisation.id)
                    .where(OutboxMessage.id == row_id, Organisation.platform == platform)
                )
            ).scalar_one_or_none()

    async def team_push_target(self, team_id: int) -> tuple[str, str, dict[str, Any]] | None:
        """(corp key of its organisation, group chat id, settings) of a team; None when the team is gone."""
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(Organisation.corp_key, Team.chat_id, Team.settings)
                    .join(Organisation, Organisation.id == Team.org_id)
                    .where(Team.id == team_id)
                )
            ).first()
        return (row.corp_key, row.chat_id, dict(row.settings or {})) if row is not None else None

    async def team_settings_by_chat(self, platform: str, chat_id: str) -> dict[str, Any] | None:
        """The settings of the team bound to a group chat on a platform; None when there is none."""
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(Team.settings)
                    .join(Organisation, Organisation.id == Team.org_id)
                    .where(Organisation.platform == platform, Team.chat_id == chat_id)
                    .limit(1)
                )
            ).scalar_one_or_none()
        return dict(row) if row else None
