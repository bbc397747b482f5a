"""The outbox survives a SIGKILL mid-flight and shares one PostgreSQL queue between replicas.

These tests use the worker's real timing (real clocks, a real subprocess), bounded by short timeouts.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from bot.adapters.wecom_webhook import WeComWebhookDeliverer
from bot.delivery import DeliverersByKind
from bot.outbox import OutboxWorker, utcnow
from storage.database import Database
from tests.conftest import PG_URL, pg_engine
from tests.fakes.wecom import FakeWeCom
from tests.outbox_helpers import duplicates, enqueue_texts, first_occurrence_order, rate_limit_answers, received_texts

ROOT = Path(__file__).resolve().parent.parent
BATCH_SIZE = 50


async def start_runner(db_url: str, api_base: str, schema: str | None) -> asyncio.subprocess.Process:
    cmd = [sys.executable, "-m", "tests.outbox_runner", "--db", db_url, "--api-base", api_base,
           "--batch-size", str(BATCH_SIZE), "--per-destination", "5", "--lease", "2"]
    if schema:
        cmd += ["--schema", schema]
    return await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, stdout=asyncio.subprocess.PIPE)


async def test_sigkill_with_500_pending_then_restart_delivers_all(db: Database, pg_schema: str | None) -> None:
    keys = [f"crash-robot-{n:02d}-secret" for n in range(50)]
    expected = {key: [f"{key[:14]} 消息 {i}" for i in range(10)] for key in keys}
    for key in keys:
        await enqueue_texts(db, key, expected[key], utcnow())
    db_url = PG_URL if not db.is_sqlite else db.url  # type: ignore[attr-defined]
    schema = None if db.is_sqlite else pg_schema
    assert db_url

    def total() -> int:
        return sum(len(received_texts(wecom, k)) for k in keys)

    async with FakeWeCom(webhook_keys=keys) as wecom:
        first = await start_runner(db_url, wecom.base_url, schema)
        try:
            await wecom.wait_for(lambda: total() >= 120, timeout=30)
            first.send_signal(signal.SIGKILL)
        finally:
            await first.wait()
        at_kill = total()
        assert at_kill < 500, "the worker finished before it could be killed; nothing was tested"

        second = await start_runner(db_url, wecom.base_url, schema)
        try:
            await wecom.wait_for(
                lambda: all(set(received_texts(wecom, k)) == set(expected[k]) for k in keys), timeout=30
            )
        finally:
            second.kill()
            await second.wait()

        everything = [t for k in keys for t in received_texts(wecom, k)]
        dups = duplicates(everything)
        print(f"\ncrash test ({'sqlite' if db.is_sqlite else 'postgresql'}): {at_kill} delivered before SIGKILL, "
              f"{dups} duplicates after restart (bound: batch of {BATCH_SIZE})")
        assert dups <= BATCH_SIZE
        for key in keys:
            assert first_occurrence_order(received_texts(wecom, key)) == expected[key]
        assert rate_limit_answers(wecom) == 0


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
async def test_two_workers_on_one_postgresql_deliver_1000_messages_each_exactly_once(
    db: Database, pg_schema: str | None
) -> None:
    assert pg_schema
    keys = [f"replica-robot-{n:03d}" for n in range(100)]
    expected = {key: [f"{key} #{i}" for i in range(10)] for key in keys}
    for key in keys:
        await enqueue_texts(db, key, expected[key], utcnow())
    other = Database(pg_engine(pg_schema))
    async with FakeWeCom(webhook_keys=keys) as wecom, aiohttp.ClientSession() as http:
        deliverer = WeComWebhookDeliverer(http, api_base=wecom.base_url)
        deliverers = {"wecom": DeliverersByKind("wecom", {"webhook": deliverer})}
        workers = [
            OutboxWorker(database, deliverers, batch_size=40, per_destination=3, poll_interval=0.2)  # type: ignore[arg-type]
            for database in (db, other)
        ]
        try:
            await asyncio.gather(*(w.start() for w in workers))
            await wecom.wait_for(lambda: sum(len(received_texts(wecom, k)) for k in keys) >= 1000, timeout=60)
            await asyncio.gather(*(w.stop() for w in workers))
        finally:
            await asyncio.gather(*(w.stop() for w in workers))
            await other.close()
        everything = Counter(t for k in keys for t in received_texts(wecom, k))
        assert len(everything) == 1000 and set(everything.values()) == {1}
        for key in keys:
            assert received_texts(wecom, key) == expected[key]
        assert sum(w.stats["sent"] for w in workers) == 1000
        assert all(w.stats["sent"] > 0 for w in workers), [w.stats for w in workers]
