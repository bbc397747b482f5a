"""The database handle the process owns: one engine, one session factory, units of work.

A unit of work is one transaction. Every chat command runs in exactly one, so a command that fails
half-way leaves nothing behind; the outbox rows it enqueued roll back with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage.engine import create_engine, is_sqlite
from storage.migrate import ensure_schema
from storage.store import Store, inbound_insert, inbound_values


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._after_commit: list[Callable[[Store], None]] = []
        self.default_timezone = "Asia/Shanghai"

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> "Database":
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
            store = Store(session, default_timezone=self.default_timezone)
            async with session.begin():
                yield store
            for callback in self._after_commit:
                callback(store)

    async def queue_inbound(self, platform: str, msg_id: str, org_key: str, payload: Any, now: datetime,
                            lease_until: datetime | None = None) -> bool:
        """`Store.queue_inbound` as a unit of work of its own, at the cost of one statement.

        The webhook answers as soon as this returns, so it is the whole of an acknowledgement's
        database time: on PostgreSQL one autocommitted INSERT (one round trip instead of BEGIN,
        INSERT, COMMIT, and no ORM session); on SQLite the usual BEGIN IMMEDIATE transaction.
        """
        values = inbound_values(platform, msg_id, org_key, now, status="received", payload=payload,
                                lease_until=lease_until)
        stmt = inbound_insert(self.engine.dialect.name)
        if self.is_sqlite:
            async with self.engine.begin() as conn:
                result = await conn.execute(stmt, values)
        else:
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                result = await conn.execute(stmt, values)
        return bool(result.rowcount)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
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
        await self.engine.dispose()
