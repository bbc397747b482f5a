"""Rate-limit windows shared by every worker on one PostgreSQL database (the `send_windows` table).

A platform counts the messages a robot or an app member *receives*, whichever replica sent them: DingTalk
blocks a robot for 10 minutes after 20 in a minute. Each limit key has one row with the send times still
inside the window and a `version`; taking slots is a compare-and-swap on that version
(`UPDATE … WHERE version = :seen`), one autocommitted statement when this process wrote the row last (it
remembers what it wrote), a read and a retry when another replica wrote it since. A worker takes the slots
for a destination's run of messages in one such statement (bot.outbox). No lock is held while a
message is on its way, and no two workers can both take the last slot.

A worker's pass sends to many destinations at once (replies to many groups): the swaps this process can
make from what it remembers go together, one `UPDATE … FROM unnest(…)` for all the keys that asked while
the previous one was in flight (`storage.database.GroupWriter`); a key whose swap lost takes the path above.

Why not the claim statement: the limit key is the deliverer's function of the destination after scoping
(WeCom corps, a team's current push), known only in Python after the claim; and several destinations
(`dest_key`s) share one limit key (a team's robot and a reply to the same group).

Times are the workers' wall clocks (epoch seconds); the caller's margin covers a second of skew between hosts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import Integer, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.database import GroupWriter
from storage.direct import Direct
from storage.models import SendWindow
from storage.sql import rowcount, table_of

_w = table_of(SendWindow)
_READ = select(_w.c.sent, _w.c.version).where(_w.c.limit_key == bindparam("key"))
_CREATE = pg_insert(_w).values(limit_key=bindparam("key"), sent=bindparam("sent"), version=1).on_conflict_do_nothing()
_SWAP = (
    update(_w)
    .where(_w.c.limit_key == bindparam("key"), _w.c.version == bindparam("seen", type_=Integer))
    .values(sent=bindparam("sent"), version=bindparam("seen", type_=Integer) + 1)
)
# Several keys' compare-and-swap in one statement: the keys whose version was still the one seen.
_SWAP_MANY = text(
    "UPDATE send_windows AS w SET sent = CAST(v.sent AS JSON), version = w.version + 1 "
    "FROM unnest(CAST(:keys AS VARCHAR[]), CAST(:seen AS INTEGER[]), CAST(:sent AS VARCHAR[])) AS v(key, seen, sent) "
    "WHERE w.limit_key = v.key AND w.version = v.seen RETURNING w.limit_key"
)
# A busy key that several replicas write at once retries this often before the caller backs off briefly.
ATTEMPTS = 8
# Window statements of one process running at once. A worker's pass starts every destination's sends
# together; fifty of them asking for connections at the same moment would push the pool into overflow
# connections (opened and closed per use), which cost far more than waiting for one of a few.
CONCURRENCY = 4
# Keys whose view this process remembers; beyond it the memory starts again (one extra read per key).
REMEMBERED = 10_000


class SendWindows:
    """`update(key, now, window, change)`: the shared counterpart of bot.ratelimit.SlidingWindowLimiter."""

    def __init__(self, engine: AsyncEngine, direct: Direct | None = None) -> None:
        self.engine = engine
        # The swaps of a pass, autocommitted (storage.direct): the Database's runner, whose compiled
        # statements the outbox's claim and settle share.
        self.direct = direct or Direct(engine)
        self._seen: dict[str, tuple[int, list[float]]] = {}
        self._gate = asyncio.Semaphore(CONCURRENCY)
        self._swaps: GroupWriter[str, bool] = GroupWriter(self._swap_many, key=lambda row: str(row["key"]))

    async def update(
        self, key: str, now: float, window: float, change: Callable[[list[float]], list[float] | None]
    ) -> bool:
        """Write `change(send times still inside the window)` as `key`'s window unless it says None.

        `change` may be called more than once (another replica wrote meanwhile); the last call saw the
        truth. True when written; False when `change` said None, or the key stayed contended
        (`ATTEMPTS` writes lost in a row), which the caller tells apart by what `change` said last.
        """
        seen = self._seen.get(key)
        if seen is not None:
            # The usual case: this process wrote the key last. Swap from that, together with the other
            # keys of the pass; only a lost swap (another replica wrote) or a "no" reads the table.
            version, sent = seen
            new = change([t for t in sent if t > now - window])
            if new is not None and await self._swaps.add({"key": key, "seen": version, "sent": new}):
                self._remember(key, version + 1, new)
                return True
        async with self._gate:
            return await self._update(key, now, window, change)

    async def _swap_many(self, rows: list[dict[str, Any]]) -> dict[str, bool]:
        params = {"keys": [r["key"] for r in rows], "seen": [r["seen"] for r in rows],
                  "sent": [orjson.dumps(r["sent"]).decode() for r in rows]}
        return dict.fromkeys((key for (key,) in await self.direct.fetch(_SWAP_MANY, params)), True)

    async def _update(
        self, key: str, now: float, window: float, change: Callable[[list[float]], list[float] | None]
    ) -> bool:
        seen = self._seen.get(key)
        fresh = False
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for _attempt in range(ATTEMPTS):
                version, sent = seen if seen is not None else (0, [])
                new = change([t for t in sent if t > now - window])
                if new is None and (fresh or seen is None):
                    return False
                if new is None:
                    # What this process remembers may be older than another replica's write that gave
                    # back unused slots: a "no" is read from the table before it is believed.
                    seen, fresh = await self._read(conn, key), True
                    continue
                params: dict[str, Any] = {"key": key, "sent": new, "seen": version}
                result = await conn.execute(_CREATE if version == 0 else _SWAP, params)
                if rowcount(result) == 1:
                    self._remember(key, version + 1, new)
                    return True
                seen, fresh = await self._read(conn, key), True
        self._seen.pop(key, None)
        return False

    async def _read(self, conn: AsyncConnection, key: str) -> tuple[int, list[float]] | None:
        row = (await conn.execute(_READ, {"key": key})).first()
        return (int(row.version), [float(t) for t in row.sent]) if row is not None else None

    def _remember(self, key: str, version: int, sent: list[float]) -> None:
        if len(self._seen) >= REMEMBERED and key not in self._seen:
            self._seen.clear()
        self._seen[key] = (version, sent)
