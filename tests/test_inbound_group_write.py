"""Acknowledgements share one INSERT under load (`GroupWriter`); a row the database refuses must fail only
its own caller, not the good callbacks that happened to share its INSERT (they would be answered 503 and
re-delivered — among others again).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from storage.database import Database, GroupWriter, InboundKey, inbound_key
from storage.models import InboundMessage
from tests.db_helpers import count
from tests.dingtalk_support import dingtalk_settings, running_bot
from tests.fakes.dingtalk import FakeDingTalk

# A lone surrogate (JSON's "\ud800" decodes to one) cannot be encoded by either driver; a msg_id longer
# than String(191) is refused by PostgreSQL only (SQLite does not enforce lengths).
BAD_IDS = [pytest.param("bad-\ud800", id="unencodable"), pytest.param("x" * 300, id="too-long")]


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_a_refused_row_fails_only_its_own_caller(db: Database, bad: str) -> None:
    if db.is_sqlite and len(bad) > 191:
        pytest.skip("SQLite does not enforce column lengths")
    now = datetime.now(UTC)

    def queue(msg_id: str, org: str = "dingcorpA") -> Any:
        return db.queue_inbound("dingtalk", msg_id, org, {"msgId": msg_id}, now)

    # Started together, so they all wait for one group write.
    calls = [queue(f"good-{i}") for i in range(20)]
    calls.insert(10, queue(bad))
    calls += [queue("good-3"), queue("good-3", org="dingcorpB")]  # a re-delivery; another org's message
    results = await asyncio.gather(*calls, return_exceptions=True)
    refused = results.pop(10)
    assert isinstance(refused, Exception)
    # Each new row's caller learns its id (its command marks it done by it); a re-delivery learns None.
    ids = results[:20] + results[21:]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 21
    assert results[20] is None
    assert await count(db, InboundMessage) == 21
    # Alone, the bad row is still refused; the good ones are known (a re-delivery is acknowledged).
    with pytest.raises(Exception):  # noqa: B017 (the driver's own error type differs per database)
        await queue(bad)
    assert await queue("good-0") is None


async def test_a_database_fault_fails_the_group_without_retrying_each_row() -> None:
    writes: list[int] = []

    async def write(rows: list[dict[str, Any]]) -> dict[InboundKey, int]:
        writes.append(len(rows))
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    writer = GroupWriter(write)
    rows = [{"platform": "dingtalk", "org_key": "o", "msg_id": f"m{i}"} for i in range(5)]
    results = await asyncio.gather(*(writer.add(row) for row in rows), return_exceptions=True)
    assert all(isinstance(r, OperationalError) for r in results)
    assert writes == [5]  # one by one would only wait out the outage once per row


async def test_rows_of_a_failed_group_are_written_one_by_one() -> None:
    written: list[InboundKey] = []

    async def write(rows: list[dict[str, Any]]) -> dict[InboundKey, int]:
        if any(row["msg_id"] == "bad" for row in rows):
            raise ValueError("refused")
        written.extend(inbound_key(row) for row in rows)
        return {inbound_key(row): len(written) for row in rows}

    writer = GroupWriter(write)
    rows = [{"platform": "dingtalk", "org_key": "o", "msg_id": m} for m in ("a", "bad", "b", "a")]
    results = await asyncio.gather(*(writer.add(row) for row in rows), return_exceptions=True)
    assert results[0] == 1 and isinstance(results[1], ValueError) and results[2:] == [2, None]
    assert written == [("dingtalk", "o", "a"), ("dingtalk", "o", "b")]


async def test_one_refused_callback_among_concurrent_good_ones(db: Database) -> None:
    """Through the robot's HTTP route: 30 good callbacks and one whose msgId no database can store."""
    async with FakeDingTalk() as ding, running_bot(dingtalk_settings(ding), db) as bot:
        good = [ding.robot_text_callback(f"认领 客户{i}", "zhangsan", "张三") for i in range(30)]
        headers, _ = good[0]
        bad = ding.robot_message("认领 坏客户", "zhangsan", "张三", msg_id="bad-\ud800")
        bad_body = json.dumps(bad).encode()  # ensure_ascii: the lone surrogate travels as a JSON escape
        calls = [bot.post_robot(*callback) for callback in good]
        calls.insert(15, bot.post_robot(headers, bad_body))
        statuses = [status for status, _ in await asyncio.gather(*calls)]
        refused = statuses.pop(15)
        assert statuses == [200] * 30
        assert refused in (400, 503)  # refused before writing (validation) or by the database
        await bot.settle()
        assert await count(db, InboundMessage, InboundMessage.status == "done") == 30  # every command ran
