"""Benchmark: the web board's server time for one team on PostgreSQL.

Seeds what `bench.reports` seeds (50 teams × 20 reps, 200,000 customers, 2,000,000 follow-ups, two years of
history, COPY into a throwaway schema), serves the board on 127.0.0.1 (port 0) from the real app, and times
GET requests for one team's link: the overview for this month, this week and this quarter, the customer list
(first page, a name search, an owner and idle filter) and one customer's page. The time is measured by the
server itself (from the request's arrival to the response's end, a middleware), and the round trip by the
client. Median of 7 after one warm-up request. Target: overview ≤ 150 ms server time. Prints JSON.

    SALESBOT_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test python -m bench.board
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiohttp
from aiohttp import web

from bench.reports import NOW, seeded_database
from bot.app import build_app, make_runner
from bot.app_keys import SETTINGS_KEY
from bot.settings import Settings
from bot.web.routes import CLOCK_KEY, board_component
from storage import board_links
from storage.board_links import BoardClaims
from storage.database import Database

TEAM_ID, LEAD_ID = 7, 121  # team 7's first member is its lead (bench.reports.seed)
RUNS = 7
TARGET_MS = 150


def timed(server_ms: list[float]) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]) -> (
            web.StreamResponse):
        t = time.perf_counter()
        try:
            return await handler(request)
        finally:
            server_ms.append((time.perf_counter() - t) * 1000)

    return middleware


async def token_for(db: Database) -> str:
    async with db.transaction() as store:
        secret = await board_links.signing_secret(store, None, 1)
    assert secret is not None
    claims = BoardClaims(1, TEAM_ID, LEAD_ID, NOW + timedelta(days=7), 0)
    return board_links.sign_token(secret, claims)


async def measure(db: Database) -> dict[str, dict[str, float]]:
    server_ms: list[float] = []
    app = build_app(Settings(database_url="sqlite+aiosqlite://"), components=[board_component], database=db)
    app.middlewares.append(timed(server_ms))
    app[CLOCK_KEY] = lambda: NOW
    runner = make_runner(app, app[SETTINGS_KEY], access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}/board/{await token_for(db)}"
    pages = {
        "overview_month": base, "overview_week": f"{base}?p=week", "overview_quarter": f"{base}?p=quarter",
        "customers": f"{base}/customers", "customers_search": f"{base}/customers?q=客户77",
        "customers_owner_idle": f"{base}/customers?owner={LEAD_ID + 3}&idle=14", "customer": f"{base}/customers/7",
    }
    figures: dict[str, dict[str, float]] = {}
    try:
        async with aiohttp.ClientSession() as http:
            for name, url in pages.items():
                server, client = [], []
                for i in range(RUNS + 1):
                    t = time.perf_counter()
                    async with http.get(url) as resp:
                        assert resp.status == 200, (name, resp.status, await resp.text())
                        await resp.read()
                    if i:  # the first request warms the pool's connection and the plan caches
                        client.append((time.perf_counter() - t) * 1000)
                        server.append(server_ms[-1])
                figures[name] = {"server_ms": round(statistics.median(server), 1),
                                 "round_trip_ms": round(statistics.median(client), 1)}
    finally:
        await runner.cleanup()
    return figures


async def main() -> int:
    url = os.environ.get("SALESBOT_BENCH_PG_URL") or os.environ.get("SALESBOT_TEST_PG_URL")
    if not url:
        print("set SALESBOT_BENCH_PG_URL=postgresql+asyncpg://…", file=sys.stderr)
        return 2
    scale = sys.argv[1] if len(sys.argv) > 1 else "full"
    customers, followups, days = (200_000, 2_000_000, 730) if scale == "full" else (20_000, 200_000, 73)
    async with seeded_database(url, "board", customers, followups, days) as (db, seeded):
        figures = await measure(db)
    result = {"customers": customers, "followups": followups, "history_days": days, "seed_s": round(seeded, 1),
              "pages": figures, "target_overview_server_ms": TARGET_MS,
              "overview_met": all(v["server_ms"] <= TARGET_MS for k, v in figures.items() if k.startswith("overview"))}
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
