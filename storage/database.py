"""The database handle the process owns: one engine, one session factory, units of work.

A unit of work is one transaction. Every chat command runs in exactly one, so a command that fails
half-way leaves nothing behind; the outbox rows it enqueued roll back with it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage import deferred, housekeeping
from storage.board_links import BoardConfig
from storage.engine import create_engine, is_sqlite
from storage.inbound import INBOUND_KEY, inbound_insert, inbound_values
from storage.migrate import ensure_schema
from storage.models import InboundMessage
from storage.scope import UnitOfWorkSession
from storage.sql import table_of, unnest_insert, unnest_params
from storage.store import Store

if TYPE_CHECKING:
    from storage.direct import Direct
    from storage.outbox_queue import OutboxQueue

_inbound = table_of(InboundMessage)


InboundKey = tuple[str, str, str]  # (platform, org_key, msg_id): the unique key of inbound_messages
K = TypeVar("K")
V = TypeVar("V")


def inbound_key(row: dict[str, Any]) -> InboundKey:
    return row["platform"], row["org_key"], row["msg_id"]


def _database_fault(err: BaseException) -> bool:
    """Whether a failed write says the database is unreachable or busy rather than that a row is bad.

    A row the database refuses (too long, not encodable) fails as a DBAPIError, IntegrityError or a
    driver's ValueError; an outage as a lost connection, a timeout or an OperationalError (SQLite's
    "database is locked", "disk I/O error"). Writing the rest of a group one by one only helps against
    the first kind; against the second it would wait out one timeout per row.
    """
    if isinstance(err, DBAPIError) and err.connection_invalidated:
        return True
    return isinstance(err, (OperationalError, InterfaceError, DisconnectionError, SQLAlchemyTimeoutError,
                            TimeoutError, OSError))


class GroupWriter(Generic[K, V]):
    """Group commit for acknowledgements: rows that arrive while a write is in flight go together
    in the next one, so a burst of callbacks costs a few INSERTs and commits instead of one each.

    Rows are told apart by `key` (inbound rows: their unique key; storage.send_windows uses it too). At
    low load a row waits for nothing and is written alone, as before; under load it waits at most
    for the write in flight. Each caller learns what the write said of its own row (an inbound row's
    id), or None when it was not new — a second copy of a (platform, org_key, msg_id) in the same group
    is a re-delivery like any other.

    One row the database refuses must not fail the callbacks that happened to share its INSERT (they
    would be answered 503 and re-delivered, again among others): when a group's write fails, its rows
    are written one by one, so only the guilty caller gets the exception — unless the failure is the
    database's own (`_database_fault`), which every caller of the group shares.
    """

    def __init__(self, write: Callable[[list[dict[str, Any]]], Awaitable[Mapping[K, V]]],
                 key: Callable[[dict[str, Any]], K] = inbound_key) -> None:  # type: ignore[assignment]
        self._write = write
        self._key = key
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[V | None]]] = []
        self._busy = False
        self._task: asyncio.Future[None] | None = None  # held: the loop keeps only weak references

    async def add(self, row: dict[str, Any]) -> V | None:
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, future))
        if not self._busy:
            self._busy = True
            self._task = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                unique: dict[K, dict[str, Any]] = {}
                for row, _ in group:
                    unique.setdefault(self._key(row), row)
                outcomes = await self._write_group(list(unique.values()))
                for row, future in group:
                    if future.done():
                        continue
                    key = self._key(row)
                    outcome = outcomes[key]
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome if unique[key] is row else None)
        finally:
            self._busy = False

    async def _write_group(self, rows: list[dict[str, Any]]) -> dict[K, V | None | BaseException]:
        """Each row's key → what the write said of it (None: not new), or the exception that refused it."""
        try:
            new = await self._write(rows)
            return {self._key(row): new.get(self._key(row)) for row in rows}
        except Exception as err:
            if len(rows) == 1 or _database_fault(err):
                return {self._key(row): err for row in rows}
        outcomes: dict[K, V | None | BaseException] = {}
        for index, row in enumerate(rows):
            try:
                outcomes[self._key(row)] = (await self._write([row])).get(self._key(row))
            except Exception as err:
                if _database_fault(err):
                    outcomes.update({self._key(rest): err for rest in rows[index:]})
                    break
                outcomes[self._key(row)] = err
        return outcomes


@functools.cache
def _inbound_returning(dialect: str) -> Any:
    return inbound_insert(dialect).returning(_inbound.c.id, _inbound.c.platform, _inbound.c.org_key, _inbound.c.msg_id)


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False, sync_session_class=UnitOfWorkSession)
        self._after_commit: list[Callable[[Store], None]] = []
        self.default_timezone = "Asia/Shanghai"
        self.name_key_version = 0  # bot.assembly sets the running normaliser's (storage does not know it)
        self.board = BoardConfig()  # bot.assembly sets the configured public URL and secret
        self.chart_font: str | None = None  # bot.assembly sets the font found at start (bot.charts)
        self.admin_entries: tuple[str, ...] = ()  # bot.assembly sets SALESBOT_ADMINS (storage.admins)
        self._inbound_writer: GroupWriter[InboundKey, int] = GroupWriter(self._insert_inbound)

    @functools.cached_property
    def outbox(self) -> OutboxQueue:
        """The outbox as a queue (claims, settles, send-time lookups): its own short transactions and
        autocommitted statements, outside any unit of work. Built on first use: its prebuilt statements
        (~25 ms to import) are for the worker and the CLI, not for a console chat."""
        from storage import outbox_queue

        return outbox_queue.OutboxQueue(self.engine, self.sessions, self.direct)

    @functools.cached_property
    def direct(self) -> Direct | None:
        """PostgreSQL's runner for the queue's autocommitted statements (storage.direct); None on SQLite."""
        if self.is_sqlite:
            return None
        from storage.direct import Direct

        return Direct(self.engine)

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> Database:
        return cls(create_engine(url, **kwargs))  # type: ignore[arg-type]

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.engine)

    def on_commit(self, callback: Callable[[Store], None]) -> None:
        """Run `callback(store)` after every committed unit of work (e.g. wake the outbox worker)."""
        self._after_commit.append(callback)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Store]:
        async with self.sessions() as session:
            store = Store(session, default_timezone=self.default_timezone, name_key_version=self.name_key_version,
                          board=self.board, chart_font=self.chart_font, admin_entries=self.admin_entries)
            async with session.begin():
                yield store
                await deferred.flush(session, self.direct)  # the audit and outbox rows the commands left waiting
            for callback in self._after_commit:
                callback(store)

    async def queue_inbound(self, platform: str, msg_id: str, org_key: str, payload: Any, now: datetime,
                            lease_until: datetime | None = None, sign: str | None = None) -> int | None:
        """`Store.queue_inbound` as a unit of work of its own, shared with the callbacks arriving with it:
        the new row's id (the command's transaction marks it done by it), None for a re-delivery.

        The webhook answers as soon as this returns, so it is the whole of an acknowledgement's
        database time: on PostgreSQL one autocommitted INSERT (one round trip instead of BEGIN,
        INSERT, COMMIT, and no ORM session); on SQLite the usual BEGIN IMMEDIATE transaction. Rows
        recorded while another INSERT is in flight go together in the next one (`GroupWriter`).
        """
        values = inbound_values(platform, msg_id, org_key, now, status="received", payload=payload,
                                lease_until=lease_until, sign=sign)
        return await self._inbound_writer.add(values)

    async def _insert_inbound(self, rows: list[dict[str, Any]]) -> dict[InboundKey, int]:
        """One INSERT for every acknowledgement waiting: (platform, org_key, msg_id) → id of the rows that were new."""
        if self.is_sqlite:
            async with self.engine.begin() as conn:
                result = await conn.execute(_inbound_returning(self.engine.dialect.name), rows)
            return {(p, o, m): row_id for row_id, p, o, m in result.all()}
        assert self.direct is not None
        columns = tuple(rows[0])
        stmt = unnest_insert(_inbound, columns, INBOUND_KEY, returning=("id", "platform", "org_key", "msg_id"))
        return {(p, o, m): row_id for row_id, p, o, m in await self.direct.fetch(stmt, unnest_params(columns, rows))}

    async def prune_bookkeeping(self, now: datetime, keep_days: int) -> dict[str, int]:
        """Delete finished outbox rows (sent, failed) and finished inbound rows (done, failed) whose last
        activity is more than `keep_days` old, a chunk per transaction; return how many of each went."""
        cutoff = now - timedelta(days=keep_days)
        removed: dict[str, int] = {}
        for name in housekeeping.TABLES:
            removed[name] = 0
            while True:
                async with self.transaction() as store:
                    count = await housekeeping.prune_chunk(store, name, cutoff)
                removed[name] += count
                if count < housekeeping.CHUNK:
                    break
        return removed

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A bare session outside any unit of work (tests and inspection)."""
        async with self.sessions() as session:
            yield session

    async def prepare(self, *, auto_migrate: bool | None = None) -> None:
        """Bring the schema to head on SQLite; on PostgreSQL only check it (see storage.migrate)."""
        await ensure_schema(self.engine, auto_migrate=self.is_sqlite if auto_migrate is None else auto_migrate)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        if "direct" in self.__dict__ and self.direct is not None:  # built on first use (cached_property)
            await self.direct.close()
        await self.engine.dispose()
