"""Outbox benchmark: deliveries per second to 100 distinct fake WeCom webhooks, and what enqueueing
costs inside a command's transaction.

    python -m bench.outbox                       # SQLite file in a temp directory
    SALESBOT_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test python -m bench.outbox

Prints one JSON object. 20 messages per webhook keep every robot at (not over) its 20/min limit, so the
figure is the worker's throughput, not the limiter's. On PostgreSQL every send takes its slot in the shared
`send_windows` row of its robot (one compare-and-swap statement).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.adapters.wecom_webhook import MARKDOWN_MAX_BYTES, WeComWebhookDeliverer, webhook_dest_key, webhook_destination  # noqa: E402
from bot.delivery import DeliverersByKind, OutgoingMessage  # noqa: E402
from bot.outbox import OutboxWorker, enqueue_message, utcnow  # noqa: E402
from storage import migrate  # noqa: E402
from storage.database import Database  # noqa: E402
from storage.engine import create_engine  # noqa: E402
from tests.fakes.wecom import FakeWeCom  # noqa: E402

WEBHOOKS = 100
PER_WEBHOOK = 20
ENQUEUE_TX = 200
PER_TX = 5


async def open_db(pg_url: str | None, tmp: Path) -> tuple[Database, Any]:
    if not pg_url:
        db = Database.from_url(f"sqlite+aiosqlite:///{tmp / 'bench.db'}")
        await db.prepare()
        return db, None
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = Database(create_engine(pg_url, pool_size=20, connect_args={"server_settings": {"search_path": schema}}))
    await migrate.upgrade(db.engine)

    async def drop() -> None:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()

    return db, drop


@contextlib.asynccontextmanager
async def bench_db(pg_url: str | None, tmp: Path) -> AsyncIterator[Database]:
    """`open_db`, closed and (PostgreSQL) its schema dropped at the end."""
    db, drop = await open_db(pg_url, tmp)
    try:
        yield db
    finally:
        await db.close()
        if drop:
            await drop()


async def enqueue_cost(db: Database) -> dict[str, float]:
    key = "bench-enqueue-key"
    start = time.perf_counter()
    for _ in range(ENQUEUE_TX):
        async with db.transaction() as store:  # a command always touches the database at least once
            await store.session.execute(text("SELECT 1"))
    empty = time.perf_counter() - start
    start = time.perf_counter()
    for n in range(ENQUEUE_TX):
        async with db.transaction() as store:
            await store.session.execute(text("SELECT 1"))
            for i in range(PER_TX):
                await enqueue_message(
                    store, "wecom", webhook_destination(key), webhook_dest_key(key),
                    OutgoingMessage(f"✅ 认领成功：客户{n}-{i}\n负责人：<@zhangsan>"), utcnow(),
                    dedup_key=f"bench:{n}:{i}", max_bytes=MARKDOWN_MAX_BYTES,
                )
    full = time.perf_counter() - start
    async with db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM outbox"))
    return {
        "enqueue_ms_per_message": round((full - empty) / (ENQUEUE_TX * PER_TX) * 1000, 3),
        "baseline_transaction_ms": round(empty / ENQUEUE_TX * 1000, 3),
        "transaction_with_5_enqueues_ms": round(full / ENQUEUE_TX * 1000, 3),
    }


async def deliveries(db: Database) -> dict[str, float]:
    keys = [f"bench-robot-{n:03d}" for n in range(WEBHOOKS)]
    now = utcnow()
    async with db.transaction() as store:
        for i in range(PER_WEBHOOK):
            for key in keys:
                await store.enqueue(
                    platform="wecom",
                    destination=webhook_destination(key),
                    dest_key=webhook_dest_key(key),
                    body=OutgoingMessage(f"日报 {key} #{i}").to_json(),
                    now=now,
                )
    total = WEBHOOKS * PER_WEBHOOK
    async with FakeWeCom(webhook_keys=keys) as wecom, aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200)
    ) as http:
        deliverer = WeComWebhookDeliverer(http, api_base=wecom.base_url)
        by_kind = DeliverersByKind("wecom", {"webhook": deliverer})  # type: ignore[dict-item]
        # Merging would turn each robot's 20 into ~16 requests, the last 3 s later (bot.ratelimit.plan_slot):
        # this figure is one request per row, comparable with the figures before the shared windows.
        worker = OutboxWorker(db, {"wecom": by_kind}, batch_size=500, per_destination=10, merge_bursts=False)
        start = time.perf_counter()
        await worker.start()
        await wecom.wait_for(lambda: sum(1 for r in wecom.received if r.errcode == 0) >= total, timeout=120)
        elapsed = time.perf_counter() - start
        await worker.stop()
        limited = sum(1 for r in wecom.received if r.errcode == 45009)
    return {"messages": total, "webhooks": WEBHOOKS, "seconds": round(elapsed, 3),
            "deliveries_per_second": round(total / elapsed, 1), "rate_limit_errors": limited}


async def main() -> None:
    pg_url = os.environ.get("SALESBOT_BENCH_PG_URL") or os.environ.get("SALESBOT_TEST_PG_URL")
    with tempfile.TemporaryDirectory() as tmp:
        async with bench_db(pg_url, Path(tmp)) as db:
            result = {
                "database": "postgresql" if pg_url else "sqlite",
                **await deliveries(db),
                **await enqueue_cost(db),
            }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
