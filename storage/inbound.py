"""The inbound log: every platform message's (platform, org_key, msg_id) row — its dedup key, and for
queued platforms its durable payload until the command that handles it commits.

A platform delivering a message twice is decided by the unique (platform, org_key, msg_id) key: a
message id is unique only within one organisation (two WeCom corps or DingTalk orgs served by one
process can send the same one), so `org_key` is the organisation the message is bound to
(`Store.bind`'s org key). Recovery of recorded-but-unprocessed messages is a leased conditional
UPDATE, so replicas never both pick one up.

DingTalk's robot callbacks are signed over the timestamp only (HMAC(appSecret, timestamp + "\\n" +
appSecret)): the body is not covered, so two genuine messages signed in the same millisecond share a
(timestamp, sign) pair, and whoever captured a callback could send any body with its headers for the
whole timestamp window. Each such row carries its `sign` and the moment the pair stops being fresh
(`SIGN_FRESH_S` after this row was recorded). Marking a message done refuses it — status "replayed", no
effect — when another row with the same sign was recorded more than `SIGN_FRESH_S` before it: a pair
carries new msgIds only within a few seconds of its first use (genuine same-millisecond messages arrive
together), never later. It costs no statement of its own: the sign rides in the INSERT the
acknowledgement makes anyway, the check in the UPDATE the command makes anyway.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Insert, String, and_, bindparam, case, exists, or_, select, true, update

from storage.deferred import deferral_safe
from storage.models import InboundMessage, Member, Membership, Organisation, Team
from storage.scope import StoreBase
from storage.sql import insert_for, one_of, rowcount, status_in, table_of, unnest_rows, unnest_table
from storage.tenancy import SENDER, sender_lookups

_inbound = table_of(InboundMessage)
# Still to be processed: the predicate of the partial index `ix_inbound_messages_waiting`.
_WAITING = status_in(_inbound.c.status, "received")
# The dedup key, as the unique constraint on inbound_messages spells it.
INBOUND_KEY = ("platform", "org_key", "msg_id")
# How long a signed (timestamp, sign) pair may carry further msgIds after its first use: genuine
# messages DingTalk signed in the same millisecond reach us within this of each other; a captured pair
# replayed with a forged body later than this is refused.
SIGN_FRESH_S = 3.0
REPLAYED = "replayed"


def inbound_values(platform: str, msg_id: str, org_key: str, now: datetime, *, status: str,
                   payload: Any = None, lease_until: datetime | None = None, sign: str | None = None) -> dict[str, Any]:
    return {"platform": platform, "msg_id": msg_id, "org_key": org_key, "received_at": now, "status": status,
            "processed_at": now if status == "done" else None, "payload": payload, "claimed_until": lease_until,
            "sign": sign, "sign_fresh_until": now + timedelta(seconds=SIGN_FRESH_S) if sign else None}


def inbound_insert(dialect: str) -> Insert:
    """INSERT … ON CONFLICT (platform, org_key, msg_id) DO NOTHING, built once per dialect."""
    return insert_for(dialect, _inbound, INBOUND_KEY)


class InboundQueries(StoreBase):
    async def record_inbound(self, platform: str, msg_id: str, org_key: str, now: datetime) -> bool:
        """True the first time a (platform, org_key, msg_id) is seen; False for a platform's re-delivery.

        For messages handled in the transaction that records them (console, WeCom): the row is
        written "done" at once.
        """
        result = await self.session.execute(
            inbound_insert(self.dialect), inbound_values(platform, msg_id, org_key, now, status="done")
        )
        return bool(rowcount(result))

    async def queue_inbound(self, platform: str, msg_id: str, org_key: str, payload: Any, now: datetime,
                            lease_until: datetime | None = None, sign: str | None = None) -> bool:
        """Record a message to process after acknowledging it; False if (platform, org_key, msg_id) is known.

        The same unique row that deduplicates re-deliveries carries the payload, so once this commits
        the message survives a crash between the platform's answer and the command. The recording
        process holds it until `lease_until`: recovery elsewhere leaves it alone while it waits in that
        process's queue, and takes it once the lease lapses (the process died).
        """
        result = await self.session.execute(
            inbound_insert(self.dialect),
            inbound_values(platform, msg_id, org_key, now, status="received", payload=payload, lease_until=lease_until,
                           sign=sign),
        )
        return bool(rowcount(result))

    async def finish_inbound(self, platform: str, org_key: str, msg_id: str, now: datetime,
                             status: str = "done", sender: tuple[str, str] | None = None) -> str | None:
        """Mark a queued message processed in this (the command's) transaction: its new status (`status`,
        or "replayed" for a signature used past its freshness), None if it was not waiting any more.

        The conditional UPDATE takes the row's lock until commit, so two workers (or replicas) that
        got the same message serialise here and the second finds it done: one effect.

        `sender`: (chat id, user id) of a group message, about to be bound (`Store.bind`). On PostgreSQL
        the same statement reads its organisation, team, member and membership, which `bind` then finds
        without a round trip of its own (`prefetched`), as a batch's senders are read ahead.
        """
        params = {"p": platform, "o": org_key, "m": msg_id, "new_status": status, "done_at": now}
        if sender is None or self.dialect != "postgresql":
            return (await self.session.execute(_INBOUND_FINISH, params)).scalar_one_or_none()
        chat_id, user_id = sender
        row = (await self.session.execute(_FINISH_AND_BIND, {**params, "chat_id": chat_id, "user_id": user_id})).first()
        if row is None:
            return None
        if row[4] is not None:  # the membership, so all four: they are inner joins inside the outer one
            self.keep_binding(platform, org_key, row[1:])
        return str(row[0])

    async def finish_inbound_many(
        self, platform: str, org_key: str, msgs: Sequence[tuple[str, int | None]], now: datetime,
        senders: Mapping[str, tuple[str, str]] | None = None,
    ) -> dict[str, str]:
        """`finish_inbound` for a batch of one organisation's queued messages, (msg id, row id if known):
        {msg id: "done" or "replayed"} of those that were waiting.

        Rows whose id the acknowledgement returned are found by primary key; the rest (recovered by
        another pass, queued by a test) by their key. A queue table's statistics are seldom what it holds
        right now, and by key the planner could scan an organisation's whole history.

        `senders`: msg id → (chat id, user id) of the group messages. On PostgreSQL, when every row id is
        known, the same statement reads their bindings into `prefetched` (as `finish_inbound` does for one).
        """
        by_row = [row for _, row in msgs if row is not None]
        by_key = [msg_id for msg_id, row in msgs if row is None]
        if senders and not by_key and self.dialect == "postgresql":
            return await self._finish_and_bind_many(platform, org_key, by_row, now, senders)
        finished: dict[str, str] = {}
        by_rows = _INBOUND_FINISH_ROWS[self.dialect == "postgresql"]
        for statement, params in ((by_rows, {"rows": by_row}), (_INBOUND_FINISH_MANY, {"ids": by_key})):
            if next(iter(params.values())):
                result = await self.session.execute(statement, {"p": platform, "o": org_key, "done_at": now, **params})
                finished.update((msg_id, status) for msg_id, status in result.all())
        return finished

    async def _finish_and_bind_many(self, platform: str, org_key: str, rows: list[int], now: datetime,
                                    senders: Mapping[str, tuple[str, str]]) -> dict[str, str]:
        params = {"p": platform, "o": org_key, "done_at": now, "rows": rows,
                  **unnest_rows("m", ("msg_id", "chat_id", "user_id"), [(i, *s) for i, s in senders.items()])}
        finished: dict[str, str] = {}
        for row in (await self.session.execute(_finish_and_bind_many(), params)).all():
            finished[row[0]] = row[1]
            if row[5] is not None:  # the membership: the sender is known
                self.keep_binding(platform, org_key, row[2:])
        return finished

    async def claim_stale_inbound(
        self, platform: str, *, received_before: datetime, now: datetime, lease_until: datetime, limit: int = 100
    ) -> list[tuple[int, str, str, Any]]:
        """(id, org_key, msg_id, payload) of recorded-but-unprocessed messages older than `received_before`.

        Claimed with a lease (`claimed_until`) in one conditional UPDATE, so two replicas recovering at
        once never both pick a row up; on PostgreSQL rows locked by a command in flight are skipped.
        A claimed row that is still not done when its lease lapses is picked up again.
        """
        table = _inbound
        candidates = (
            select(table.c.id)
            .where(
                table.c.platform == platform,
                _WAITING,
                table.c.received_at < received_before,
                or_(table.c.claimed_until.is_(None), table.c.claimed_until <= now),
            )
            .order_by(table.c.id)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        stmt = (
            update(table)
            .where(table.c.id.in_(candidates.scalar_subquery()), _WAITING)
            .values(claimed_until=lease_until)
            .returning(table.c.id, table.c.org_key, table.c.msg_id, table.c.payload)
        )
        rows = (await self.session.execute(stmt)).all()
        return [(i, o, m, p) for i, o, m, p in rows]


_first_use = _inbound.alias("first_use")
# Another row with the same sign whose freshness had ended when this one was recorded: a replay.
_REPLAYED = exists().where(
    _first_use.c.sign == _inbound.c.sign, _first_use.c.sign_fresh_until < _inbound.c.received_at
)
_INBOUND_FINISH = (
    update(_inbound)
    .where(
        _inbound.c.platform == bindparam("p"),
        _inbound.c.org_key == bindparam("o"),
        _inbound.c.msg_id == bindparam("m"),
        _WAITING,
    )
    .values(status=case((_REPLAYED, REPLAYED), else_=bindparam("new_status")), processed_at=bindparam("done_at"))
    .returning(_inbound.c.status)
)


def _finish_batch(*where: Any) -> Any:
    """A batch's finish: the waiting rows `where` finds become done (or replayed); (msg id, status) of each."""
    return (
        update(_inbound)
        .where(*where, _WAITING)
        .values(status=case((_REPLAYED, REPLAYED), else_="done"),
                processed_at=bindparam("done_at", type_=_inbound.c.processed_at.type))
        .returning(_inbound.c.msg_id, _inbound.c.status)
    )


_INBOUND_FINISH_MANY = _finish_batch(
    _inbound.c.platform == bindparam("p"),
    _inbound.c.org_key == bindparam("o"),
    _inbound.c.msg_id.in_(bindparam("ids", expanding=True)),
)
# By row id alone (the ids as one array on PostgreSQL): with the key too, a planner without statistics yet
# scanned the organisation's rows.
_INBOUND_FINISH_ROWS = {postgres: _finish_batch(one_of(_inbound.c.id, "rows", postgres)) for postgres in (False, True)}
# PostgreSQL: `_INBOUND_FINISH` and, in the same statement, the sender's binding (storage.tenancy.SENDER),
# outer-joined: a message that is not waiting any more gives no row, a sender seen for the first time a
# row without one.
_finished = _INBOUND_FINISH.cte("finished")
_FINISH_AND_BIND = select(_finished.c.status, Organisation, Team, Member, Membership).select_from(
    _finished.outerjoin(SENDER, and_(Organisation.platform == bindparam("p"), Organisation.corp_key == bindparam("o")))
)


@functools.cache
def _finish_and_bind_many() -> Any:
    """PostgreSQL: a batch's finish by row ids and, in the same statement, each group message's sender
    (storage.tenancy.sender_lookups), outer-joined: one row per message that was waiting, its binding None
    where the sender is new."""
    finished = _INBOUND_FINISH_ROWS[True].cte("finished")
    m = unnest_table("m", msg_id=String, chat_id=String, user_id=String)
    team, member = sender_lookups(m.c.chat_id, m.c.user_id, bindparam("p"), bindparam("o"))
    statement = (
        select(finished.c.msg_id, finished.c.status, Organisation, team, member, Membership)
        .select_from(finished)
        .outerjoin(m, m.c.msg_id == finished.c.msg_id)
        .outerjoin(team, true())
        .outerjoin(member, true())
        .outerjoin(Organisation, Organisation.id == team.org_id)
        .outerjoin(Membership, and_(Membership.team_id == team.id, Membership.member_id == member.id))
    )
    return deferral_safe(statement)


# Statements that cannot see the rows a unit of work defers (storage.deferred).
for _safe in (_INBOUND_FINISH, _INBOUND_FINISH_MANY, *_INBOUND_FINISH_ROWS.values(), _FINISH_AND_BIND):
    deferral_safe(_safe)
