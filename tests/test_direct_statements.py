"""PostgreSQL's queue statements that run straight on asyncpg (storage.direct) behave as they did through
SQLAlchemy: the same rows and types, a refused value refused alone, an outage reported as one and the
dead connection left out of the pool."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import exc, func, select, text

from storage.database import Database
from storage.outbox_queue import _NEXT_DUE


@pytest.fixture
def pg(db: Database) -> Database:
    if db.is_sqlite:
        pytest.skip("the direct path is PostgreSQL's; SQLite goes through SQLAlchemy")
    return db


async def test_an_acknowledged_message_gets_its_row_id_and_a_second_copy_none(pg: Database) -> None:
    now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    first = await pg.queue_inbound("dingtalk", "msg-1", "corp", {"text": "跟进 华为"}, now)
    again = await pg.queue_inbound("dingtalk", "msg-1", "corp", {"text": "跟进 华为"}, now)
    assert isinstance(first, int) and again is None
    async with pg.engine.connect() as conn:
        row = (await conn.execute(text("SELECT payload, received_at FROM inbound_messages"))).one()
    assert row.payload == {"text": "跟进 华为"}
    assert row.received_at.replace(tzinfo=UTC) == now  # stored as UTC, as SQLAlchemy's path stored it


async def test_results_come_back_through_their_types(pg: Database) -> None:
    assert pg.direct is not None
    [(pending, leased)] = await pg.direct.fetch(_NEXT_DUE[True, False], {})
    assert (pending, leased) == (None, None)
    due = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    async with pg.engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO outbox (platform, dest_key, destination, body, status, attempts, next_attempt_at, created_at)"
            " VALUES ('dingtalk', 'chat:c1', '{}', '{}', 'pending', 0, :due, :due)"), {"due": due.replace(tzinfo=None)})
    [(pending, leased)] = await pg.direct.fetch(_NEXT_DUE[True, False], {})
    assert pending == due and pending.tzinfo is not None and leased is None


async def test_a_value_the_column_refuses_is_a_data_error_not_an_outage(pg: Database) -> None:
    with pytest.raises(exc.DataError):
        await pg.queue_inbound("dingtalk", "m" * 500, "corp", {}, datetime.now(UTC))
    assert await pg.queue_inbound("dingtalk", "fine", "corp", {}, datetime.now(UTC)) is not None


async def test_a_connection_killed_under_it_is_an_outage_and_leaves_the_pool(pg: Database) -> None:
    assert pg.direct is not None
    async with pg.engine.connect() as victim:  # returned last: the connection the next checkout gets (LIFO)
        pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await victim.commit()
        async with pg.engine.connect() as killer:
            await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with pytest.raises(exc.OperationalError) as caught:
        await pg.direct.fetch(_NEXT_DUE[True, False], {})
    assert caught.value.connection_invalidated
    assert await pg.direct.fetch(_NEXT_DUE[True, False], {}) == [(None, None)]  # a fresh connection
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert await pg.queue_inbound("dingtalk", "after", "corp", {}, later) is not None


_BACKEND_PID = select(func.pg_backend_pid())


async def test_a_held_connection_the_server_ended_while_it_waited_is_replaced_without_an_error(pg: Database) -> None:
    """Direct keeps its connections between statements; one the server ended meanwhile (a restart, an
    administrator) is not handed out again, and the statement after it simply runs."""
    assert pg.direct is not None
    [(pid,)] = await pg.direct.fetch(_BACKEND_PID, {})  # its connection stays held
    async with pg.engine.connect() as killer:
        await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await asyncio.sleep(0.2)  # the server's goodbye reaches the held connection
    [(other,)] = await pg.direct.fetch(_BACKEND_PID, {})
    assert other != pid
    assert await pg.direct.fetch(_NEXT_DUE[True, False], {}) == [(None, None)]
