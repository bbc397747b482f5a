"""Late AI-bot replies through the one-shot `response_url` (issue 12, defect 5): a rate-limited answer is retried
with backoff, and once the URL is spent or expired the reply reaches the same chat another way — the group's
robot webhook, else the asker through the app. Nothing is lost, nothing is sent twice.

A real callback (reply budget 0, so the reply goes through the outbox), the real outbox worker on a fake clock
shared with the fake WeCom (whose response_url expires after an hour of that clock).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.outbox import OutboxWorker
from storage.database import Database
from storage.models import OutboxMessage
from tests.conftest import FakeClock
from tests.fakes.wecom import ERR_FREQ_LIMIT, RESPONSE_URL_PATH, FakeWeCom
from tests.wecom_support import AIBOT_KEY, APP_KEY, WALL, MakeClient, adapter, post_aibot

WEBHOOK_KEY = "group-robot-key-0001"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))  # rows are queued with the real time: start there


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeWeCom]:
    async with FakeWeCom(corp_id="wwcorp", corp_secret="sec", aibot_token="T", aibot_aes_key=AIBOT_KEY,
                         app_token="T2", app_aes_key=APP_KEY, agent_id=1000002, webhook_keys=[WEBHOOK_KEY],
                         wall_clock=lambda: WALL, clock=lambda: clock.now.timestamp()) as wecom:
        yield wecom


async def late_reply(client: TestClient, fake: FakeWeCom, chat_type: str = "group") -> str:
    """A command whose answer misses the passive window; returns the callback's response_url."""
    status, _ = await post_aibot(client, fake.aibot_text_callback("认领 杭州某某网络", "zhangsan", "grpSales",
                                                                  chat_type=chat_type))
    assert status == 200
    await asyncio.gather(*list(adapter(client)._tasks))
    return str(fake.sent_aibot_callbacks[-1]["response_url"])


async def set_group_webhook(db: Database) -> None:
    async with db.transaction() as store:
        await store.bind(platform="wecom", org_key="wwcorp", chat_id="grpSales", chat_title=None, user_id=None,
                         user_name=None, now=datetime.now(UTC))
        await store.update_team_settings({"wecom_webhook_key": WEBHOOK_KEY}, datetime.now(UTC))


async def drive(worker: OutboxWorker, clock: FakeClock, db: Database, *, step: float, steps: int) -> OutboxMessage:
    """Run the worker, move the clock, until the one row is settled; return it."""
    for _ in range(steps):
        await worker.run_once()
        async with db.session() as session:
            [row] = (await session.execute(select(OutboxMessage))).scalars().all()
        if row.status != "pending":
            return row
        clock.advance(seconds=step)
    raise AssertionError(f"row still pending: {row.last_error}")


def everything_sent(fake: FakeWeCom) -> list[str]:
    """Every reply the platform accepted, on any channel."""
    texts = [m["markdown"]["content"] for m in fake.response_url_messages()]
    texts += [m["markdown"]["content"] for m in fake.webhook_messages(WEBHOOK_KEY)]
    texts += [m["markdown"]["content"] for m in fake.delivered_to("zhangsan")]
    return texts


async def test_rate_limited_response_url_is_retried_and_arrives_once(
    make_client: MakeClient, fake: FakeWeCom, db: Database, clock: FakeClock
) -> None:
    client = await make_client(reply_budget_ms=0)
    url = await late_reply(client, fake)
    fake.fail_next(RESPONSE_URL_PATH, ERR_FREQ_LIMIT, count=2)
    worker = OutboxWorker(db, {"wecom": adapter(client).deliverer}, clock=clock)
    row = await drive(worker, clock, db, step=61, steps=10)
    assert row.status == "sent" and row.attempts == 3
    limited = [r for r in fake.received if r.path == RESPONSE_URL_PATH and r.errcode == ERR_FREQ_LIMIT]
    assert len(limited) == 2 and limited[1].time - limited[0].time >= 60  # backed off as 45009 asks
    [posted] = fake.response_url_messages(url)
    assert "认领成功" in posted["markdown"]["content"]
    assert len(everything_sent(fake)) == 1


async def test_expired_response_url_falls_back_to_the_group_webhook(
    make_client: MakeClient, fake: FakeWeCom, db: Database, clock: FakeClock
) -> None:
    client = await make_client(reply_budget_ms=0)
    await late_reply(client, fake)
    await set_group_webhook(db)
    clock.advance(hours=1, seconds=1)  # the URL's hour is over (the outbox was down, say)
    worker = OutboxWorker(db, {"wecom": adapter(client).deliverer}, clock=clock)
    row = await drive(worker, clock, db, step=61, steps=3)
    assert row.status == "sent"
    [posted] = fake.webhook_messages(WEBHOOK_KEY)
    assert "认领成功" in posted["markdown"]["content"]
    assert fake.response_url_messages() == [] and len(everything_sent(fake)) == 1


async def test_rate_limited_until_expiry_then_the_fallback_delivers_once(
    make_client: MakeClient, fake: FakeWeCom, db: Database, clock: FakeClock
) -> None:
    """45009 for longer than the URL lives: retried while it may still work, then the group webhook."""
    client = await make_client(reply_budget_ms=0)
    await late_reply(client, fake)
    await set_group_webhook(db)
    fake.fail_next(RESPONSE_URL_PATH, ERR_FREQ_LIMIT, count=1000)
    worker = OutboxWorker(db, {"wecom": adapter(client).deliverer}, clock=clock)
    row = await drive(worker, clock, db, step=300, steps=30)
    assert row.status == "sent"
    assert len(fake.webhook_messages(WEBHOOK_KEY)) == 1 and len(everything_sent(fake)) == 1


async def test_spent_response_url_without_a_group_webhook_reaches_the_asker(
    make_client: MakeClient, fake: FakeWeCom, db: Database, clock: FakeClock
) -> None:
    client = await make_client(reply_budget_ms=0)
    url = await late_reply(client, fake)
    async with client.session.post(url, json={"msgtype": "markdown", "markdown": {"content": "别人先用了"}}):
        pass  # the one shot is gone before the outbox gets to it
    worker = OutboxWorker(db, {"wecom": adapter(client).deliverer}, clock=clock)
    row = await drive(worker, clock, db, step=61, steps=3)
    assert row.status == "sent"
    [direct] = fake.delivered_to("zhangsan")
    assert "认领成功" in direct["markdown"]["content"]
    assert fake.webhook_messages(WEBHOOK_KEY) == [] and len(fake.response_url_messages()) == 1


async def test_single_chat_falls_back_to_the_asker_not_a_group(
    make_client: MakeClient, fake: FakeWeCom, db: Database, clock: FakeClock
) -> None:
    await say_in_group_first(await make_client(), fake)
    client = await make_client(reply_budget_ms=0)
    await set_group_webhook(db)
    await late_reply(client, fake, chat_type="single")
    clock.advance(hours=2)
    worker = OutboxWorker(db, {"wecom": adapter(client).deliverer}, clock=clock)
    async with db.session() as session:
        rows = (await session.execute(select(OutboxMessage))).scalars().all()
    assert [r.destination["fallback"] for r in rows] == [
        [{"kind": "member", "user_ids": ["zhangsan"], "corp_id": "wwcorp"}]]
    row = await drive(worker, clock, db, step=61, steps=3)
    assert row.status == "sent" and len(fake.delivered_to("zhangsan")) == 1
    assert fake.webhook_messages(WEBHOOK_KEY) == []


async def say_in_group_first(client: TestClient, fake: FakeWeCom) -> None:
    """A rep is known (has a team) only once they have spoken in its group; answered inline, nothing queued."""
    status, _ = await post_aibot(client, fake.aibot_text_callback("帮助", "zhangsan", "grpSales"))
    assert status == 200
