"""Benchmark: what organisations' own holidays (设置 假期) cost the scheduler's minute tick.

Seeds 350 teams in 100 organisations (SQLite file, or PostgreSQL in a throwaway schema when
SALESBOT_BENCH_PG_URL is set), fires every slot once so later ticks only decide, then measures a tick
(median CPU time of 31, and its SQL statements) in four states:

* ``none``: no organisation has entries (what main costs);
* ``cached``: every organisation has 30 entries (a year's 假期 and 调休), cached since the last tick;
* ``one_changed``: as ``cached``, with one organisation's calendar changed before each tick (one re-read);
* ``no_cache``: every organisation's entries re-read every tick (the cache emptied before each).

    python -m bench.holiday_tick
    SALESBOT_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test python -m bench.holiday_tick
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import event, text

from schedules.holidays import OrgCalendars
from schedules.scheduler import Scheduler
from storage import migrate
from storage.calendar_days import DayEntry, write_days
from storage.database import Database
from storage.engine import create_engine

ORGS, TEAMS = 100, 350
NOW = datetime(2027, 2, 8, 1, 10, tzinfo=UTC)  # 09:10 Asia/Shanghai, Monday in 春节 2027
RUNS = 31


async def seed(db: Database) -> list[int]:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    org_ids = []
    async with db.transaction() as store:
        for o in range(ORGS):
            org = await store.ensure_org("wecom", f"corp{o}", start)
            org_ids.append(org.id)
            for t in range(o, TEAMS, ORGS):
                await store.ensure_team(org, f"chat{t}", f"团队{t}", start)
    return org_ids


async def enter_year(db: Database, org_ids: list[int]) -> None:
    holidays = [date(2027, 2, 6) + timedelta(days=i) for i in range(8)] + [
        date(2027, 10, 1) + timedelta(days=i) for i in range(8)
    ] + [date(2027, 1, 1), date(2027, 4, 5), date(2027, 5, 1), date(2027, 5, 2), date(2027, 5, 3),
         date(2027, 6, 9), date(2027, 9, 15), date(2027, 9, 16), date(2027, 9, 17)]
    workdays = [date(2027, 2, 14), date(2027, 2, 20), date(2027, 4, 25), date(2027, 9, 26), date(2027, 10, 9)]
    entries = [DayEntry(d, "holiday", "假") for d in holidays] + [DayEntry(d, "workday", "班") for d in workdays]
    async with db.transaction() as store:
        for org_id in org_ids:
            await write_days(store, org_id, entries, "import", NOW)


async def time_ticks(db: Database, scheduler: Scheduler, before_each: object = None) -> dict[str, float]:
    """Median CPU time of this process per tick (the machine is shared: wall time is mostly other
    people's load) and the SQL statements a tick runs."""
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    samples = []
    for _ in range(RUNS):
        if callable(before_each):
            await before_each()
        statements = 0
        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        t0 = time.process_time()
        await scheduler.tick(NOW)
        samples.append((time.process_time() - t0) * 1000)
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    return {"cpu_ms": round(statistics.median(samples), 2), "statements": statements}


async def bench(db: Database) -> dict[str, object]:
    org_ids = await seed(db)
    scheduler = Scheduler(db)
    await scheduler.tick(NOW)  # every due slot settled: later ticks only decide
    result: dict[str, object] = {"teams": TEAMS, "orgs": ORGS}
    result["none"] = await time_ticks(db, scheduler)
    await enter_year(db, org_ids)
    await scheduler.tick(NOW)
    result["cached"] = await time_ticks(db, scheduler)

    async def change_one() -> None:
        async with db.transaction() as store:
            await write_days(store, org_ids[0], [DayEntry(date(2027, 12, 31), "holiday", str(time.time()))],
                             "admin", NOW)

    result["one_changed"] = await time_ticks(db, scheduler, change_one)

    async def forget() -> None:
        scheduler.calendars = OrgCalendars()

    result["no_cache"] = await time_ticks(db, scheduler, forget)
    return result


async def main() -> int:
    logging.getLogger("salesbot").setLevel(logging.ERROR)  # the skipped-slot and fallback warnings
    url = os.environ.get("SALESBOT_BENCH_PG_URL")
    if url:
        schema = f"bench_tick_{uuid.uuid4().hex[:6]}"
        admin = create_engine(url)
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        db = Database(create_engine(url, connect_args={"server_settings": {"search_path": schema}}))
        try:
            await migrate.upgrade(db.engine)
            result = {"database": "postgresql", **await bench(db)}
        finally:
            await db.close()
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            await admin.dispose()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            db = Database.from_url(f"sqlite+aiosqlite:///{tmp}/bench.db")
            try:
                await db.prepare()
                result = {"database": "sqlite", **await bench(db)}
            finally:
                await db.close()
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
