"""What one reply's claim costs as settled rows pile up between two VACUUMs (PostgreSQL only).

    SALESBOT_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test python -m bench.outbox_claim

A settled outbox row leaves its entries in the partial indexes the claim reads, dead, until VACUUM
(autovacuum comes after a fifth of the table has changed, at most once a minute). In a schema of its own,
with autovacuum off on the outbox (the time before it comes), this settles N replies the way the worker
does (queued, leased, sent; 300 groups), analyzes the table (autovacuum's ANALYZE comes earlier, at a
tenth), then times the claim of one new reply, as a sweep (every
destination) and keyed by its destination (what a commit's wake claims, bot.outbox_wakes): the
statement's own time on the server (pg_stat_statements when it is loaded, else EXPLAIN ANALYZE) and the
whole call in this process. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.outbox import bench_db  # noqa: E402
from bot.delivery import OutgoingMessage  # noqa: E402
from bot.outbox import utcnow  # noqa: E402
from storage.database import Database  # noqa: E402
from storage.outbox_queue import Outcome  # noqa: E402

GROUPS = 300
SETTLED = (0, 3_000, 30_000)
ROUNDS = 30


async def queue(db: Database, count: int, start: int) -> None:
    """`count` replies, one transaction per 100 (a batch of commands)."""
    now = utcnow()
    for first in range(start, start + count, 100):
        async with db.transaction() as store:
            for n in range(first, min(first + 100, start + count)):
                key = f"dingtalk:chat:bench-{n % GROUPS:03d}"
                await store.enqueue(platform="dingtalk", destination={"kind": "team", "chat_id": key},
                                    dest_key=key, body=OutgoingMessage(f"回复 {n}").to_json(), now=now)


async def settle_all(db: Database) -> None:
    """Lease and settle everything queued, as the worker does (one claim and one settle per batch)."""
    while rows := await db.outbox.claim(utcnow(), lease_seconds=60, batch_size=500, per_destination=20):
        await db.outbox.finish(Outcome([r.id for r in rows], [], [], []), utcnow())


async def one_claim(db: Database, n: int, keyed: bool) -> float:
    await queue(db, 1, n)
    key = f"dingtalk:chat:bench-{n % GROUPS:03d}"
    started = time.perf_counter()
    rows = await db.outbox.claim(utcnow() + timedelta(seconds=1), lease_seconds=60, batch_size=200,
                                 per_destination=20, dest_keys=[key] if keyed else None)
    elapsed = time.perf_counter() - started
    assert [r.dest_key for r in rows] == [key], rows
    await db.outbox.finish(Outcome([r.id for r in rows], [], [], []), utcnow())
    return elapsed


async def server_ms(db: Database, keyed: bool) -> float | None:
    """Mean execution time of the claim statement on the server, from pg_stat_statements (if loaded)."""
    async with db.engine.connect() as conn:
        try:
            rows = (await conn.execute(text(
                "SELECT query, mean_exec_time FROM public.pg_stat_statements "
                "WHERE query LIKE 'UPDATE outbox SET status=%lease_until%' AND query LIKE '%has_later%'"
            ))).all()
        except Exception:
            return None
    found = [ms for query, ms in rows if ("CASE WHEN" in query) == keyed]
    return round(found[0], 3) if found else None


async def reset_statements(db: Database) -> bool:
    async with db.engine.connect() as conn:
        try:
            await conn.execute(text("SELECT public.pg_stat_statements_reset()"))
            return True
        except Exception:
            return False


async def main() -> None:
    pg_url = os.environ.get("SALESBOT_BENCH_PG_URL") or os.environ.get("SALESBOT_TEST_PG_URL")
    if not pg_url:
        sys.exit("PostgreSQL only: set SALESBOT_BENCH_PG_URL")
    result: dict[str, Any] = {"database": "postgresql", "groups": GROUPS, "rounds": ROUNDS, "settled": {}}
    async with bench_db(pg_url, Path(".")) as db:
        async with db.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE outbox SET (autovacuum_enabled = false)"))
        queued = 0
        for settled in SETTLED:
            await queue(db, settled - queued, queued)
            queued = settled
            await settle_all(db)
            async with db.engine.begin() as conn:
                # Statistics as autovacuum's ANALYZE keeps them (it comes at a tenth of the table, VACUUM
                # at a fifth); new statistics also retire plans made for the smaller table.
                await conn.execute(text("ANALYZE outbox"))
            figures: dict[str, Any] = {}
            for keyed in (False, True):
                stats = await reset_statements(db)
                times = [await one_claim(db, 10_000_000 + settled + i + (ROUNDS if keyed else 0), keyed)
                         for i in range(ROUNDS)]
                name = "keyed" if keyed else "sweep"
                figures[f"{name}_call_us_median"] = round(statistics.median(times) * 1e6)
                if stats:
                    figures[f"{name}_server_ms_mean"] = await server_ms(db, keyed)
            result["settled"][str(settled)] = figures
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
