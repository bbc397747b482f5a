"""A morning burst in one DingTalk group through real `salesbot serve` processes and the fake DingTalk.

DingTalk blocks a robot for 10 minutes once it gets more than 20 messages in a minute. Two replicas on one
PostgreSQL database must keep that limit together (the `send_windows` table), and the replies that wait for
a saturated group go out merged, so that all 60 reach the group within seconds as at most 20 messages.
Real time, real processes: the whole burst is delivered in about 10 s (the merged slots are paced 3 s apart).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select, text

from bot.merge import DIVIDER
from bot.messages import render_mentions
from storage.database import Database
from storage.engine import create_engine
from storage.models import OutboxMessage
from tests.dingtalk_support import text_of
from tests.fakes.dingtalk import FakeDingTalk
from tests.server_support import wait_healthz

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("SALESBOT_TEST_PG_URL")
BURST = 60
GROUP = "cid-standup"
LIMIT = 20  # DingTalk robot: messages a minute per group


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(db_url: str, ding: FakeDingTalk, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESBOT_")}
    env.update({"SALESBOT_DATABASE_URL": db_url, "SALESBOT_DINGTALK_APP_KEY": ding.app_key,
                "SALESBOT_DINGTALK_APP_SECRET": ding.app_secret, "SALESBOT_DINGTALK_OAPI_BASE": ding.oapi_base,
                "SALESBOT_DINGTALK_API_BASE": ding.api_base, "SALESBOT_LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(ROOT)})
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@asynccontextmanager
async def fresh_postgresql() -> AsyncIterator[str]:
    """A database of its own: `serve` takes a URL, not a schema."""
    assert PG_URL
    name = f"salesbot_burst_{uuid.uuid4().hex[:6]}"

    async def admin(sql: str) -> None:
        engine = create_engine(PG_URL)
        async with engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text(sql))
        await engine.dispose()

    await admin(f'CREATE DATABASE "{name}"')
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot.cli", "db", "upgrade", "--db", url,
                                                       cwd=ROOT, stdout=asyncio.subprocess.DEVNULL)
        assert await upgrade.wait() == 0
        yield url
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def burst(http: aiohttp.ClientSession, ding: FakeDingTalk, ports: list[int]) -> None:
    """60 stand-up commands in one group within seconds, spread over the servers."""
    async def one(n: int) -> None:
        headers, body = ding.robot_text_callback(f"认领 晨会客户{n}号", f"rep{n % 6}", f"销售{n % 6}",
                                                 conversation_id=GROUP, conversation_title="晨会群")
        async with http.post(f"http://127.0.0.1:{ports[n % len(ports)]}/dingtalk/robot", headers=headers,
                             data=body) as resp:
            assert resp.status == 200, await resp.text()

    for wave in range(0, BURST, 5):  # answers trickle in over 6 s, as a stand-up's do
        await asyncio.gather(*(one(n) for n in range(wave, wave + 5)))
        await asyncio.sleep(0.5)


async def replies_in_queue_order(db_url: str, *, by_commit: bool) -> list[str]:
    """The replies to the group as DingTalk shows them, in the order the outbox hands them out.

    On SQLite transactions are serial, so that is the order of their ids. On PostgreSQL two processes'
    commands commit concurrently: a row can commit after a row with a higher id was sent, and goes out
    after it; then the order is the settled one — by `sent_at`, the rows of one message or batch by id.
    """
    db = Database.from_url(db_url)
    try:
        async with db.session() as session:
            bodies = (await session.execute(
                select(OutboxMessage.body).where(OutboxMessage.dest_key == f"dingtalk:chat:{GROUP}")
                .order_by(*((OutboxMessage.sent_at,) if by_commit else ()), OutboxMessage.id)
            )).scalars().all()
    finally:
        await db.close()
    return [render_mentions(body["text"], lambda uid: f"@{uid}") for body in bodies]


async def check_burst(ding: FakeDingTalk, db_url: str, *, replicas: int) -> None:
    def parts() -> list[str]:
        return [p for rec in ding.session_messages() if rec.accepted for p in text_of(rec).split(DIVIDER)]

    with contextlib.suppress(TimeoutError):  # the checks below say what went wrong
        await ding.wait_for(lambda: len(parts()) >= BURST, timeout=40)
    await asyncio.sleep(1.0)  # anything sent twice would arrive now
    messages = [rec for rec in ding.session_messages() if rec.accepted]
    times = sorted(rec.time for rec in messages)
    busiest = max(sum(1 for t in times if start <= t < start + 60) for start in times)
    print(f"\nburst of {BURST}: {len(messages)} messages, busiest minute {busiest}, "
          f"delivered within {times[-1] - times[0]:.1f} s")
    assert busiest <= LIMIT, f"{busiest} messages in one minute to one group"
    queued = await replies_in_queue_order(db_url, by_commit=replicas > 1)
    assert len(queued) == BURST
    assert parts() == queued  # every reply exactly once, in the group's order
    assert times[-1] - times[0] < 60
    assert len(messages) < BURST, "the saturated group got no merged message"
    assert all(len(text_of(rec).encode()) <= 4000 for rec in messages)


@pytest.mark.skipif(not PG_URL, reason="needs SALESBOT_TEST_PG_URL")
async def test_two_serve_processes_on_postgresql_keep_a_groups_20_a_minute_and_merge_the_burst() -> None:
    async with fresh_postgresql() as url, FakeDingTalk() as ding, aiohttp.ClientSession() as http:
        ports = [free_port(), free_port()]
        with serve(url, ding, ports[0]), serve(url, ding, ports[1]):
            await asyncio.gather(*(wait_healthz(p) for p in ports))
            await burst(http, ding, ports)
            await check_burst(ding, url, replicas=2)


async def test_one_serve_process_on_sqlite_merges_the_burst_too(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/burst.db"
    async with FakeDingTalk() as ding, aiohttp.ClientSession() as http:
        port = free_port()
        with serve(url, ding, port):
            await wait_healthz(port)
            await burst(http, ding, [port])
            await check_burst(ding, url, replicas=1)
