"""WeCom deliverers against the fake: app message/send with the token cache, response_url, team webhook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import aiohttp
import pytest

from bot.adapters.tokens import TokenCache
from bot.adapters.wecom_send import WeComDeliverer, dest_key, render_markdown
from bot.delivery import OutgoingMessage, PermanentFailure, RetryLater
from tests.fakes.wecom import APP_SEND_PATH, ERR_BUSY, ERR_FREQ_LIMIT, FakeWeCom


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def deliverer(session: aiohttp.ClientSession, fake: FakeWeCom) -> WeComDeliverer:
    return WeComDeliverer(session, api_base=fake.base_url, corp_id="wwcorp", app_secret="sec", agent_id=1000002)


MEMBER = {"kind": "member", "user_ids": ["zhangsan"]}


async def test_direct_message_and_token_expiring_mid_run(deliverer: WeComDeliverer, fake: FakeWeCom) -> None:
    await deliverer.deliver(MEMBER, OutgoingMessage("早上好 <@lisi>", title="日报", names={"lisi": "李四"}))
    [first] = fake.delivered_to("zhangsan")
    assert first["msgtype"] == "markdown" and first["agentid"] == 1000002
    assert first["markdown"]["content"] == "**日报**\n早上好 @李四"
    fake.expire_tokens()  # WeCom revokes the token early: 42001, refresh once, resend
    await deliverer.deliver(MEMBER, OutgoingMessage("第二条"))
    assert len(fake.delivered_to("zhangsan")) == 2
    assert fake.token_requests == 2


async def test_one_token_refresh_at_a_time(deliverer: WeComDeliverer, fake: FakeWeCom) -> None:
    await asyncio.gather(*(deliverer.deliver(MEMBER, OutgoingMessage(f"消息 {i}")) for i in range(5)))
    assert fake.token_requests == 1 and len(fake.app_messages()) == 5


async def test_rate_limit_and_errors(deliverer: WeComDeliverer, fake: FakeWeCom) -> None:
    fake.fail_next(APP_SEND_PATH, ERR_FREQ_LIMIT)
    with pytest.raises(RetryLater):
        await deliverer.deliver(MEMBER, OutgoingMessage("x"))
    fake.fail_next(APP_SEND_PATH, ERR_BUSY)
    with pytest.raises(RetryLater):
        await deliverer.deliver(MEMBER, OutgoingMessage("x"))
    with pytest.raises(PermanentFailure):
        await deliverer.deliver({"kind": "member", "user_ids": []}, OutgoingMessage("x"))
    bad = WeComDeliverer(
        deliverer.session, api_base=fake.base_url, corp_id="wwcorp", app_secret="wrong", agent_id=1000002
    )
    with pytest.raises(PermanentFailure) as err:
        await bad.deliver(MEMBER, OutgoingMessage("x"))
    assert "wrong" not in err.value.reason
    with pytest.raises(PermanentFailure):
        await deliverer.deliver({"kind": "carrier-pigeon"}, OutgoingMessage("x"))


async def test_response_url_only_to_the_api_host(deliverer: WeComDeliverer, fake: FakeWeCom) -> None:
    with pytest.raises(PermanentFailure):
        await deliverer.deliver({"kind": "response_url", "url": "https://evil.example/steal"}, OutgoingMessage("x"))
    url = fake.new_response_url()
    await deliverer.deliver({"kind": "response_url", "url": url}, OutgoingMessage("好的 <@u1>", names={"u1": "张三"}))
    assert fake.response_url_messages(url) == [{"msgtype": "markdown", "markdown": {"content": "好的 @张三"}}]


async def test_network_failure_is_retry_later(session: aiohttp.ClientSession) -> None:
    dead = WeComDeliverer(session, api_base="http://127.0.0.1:9", corp_id="c", app_secret="s", agent_id=1)
    with pytest.raises(RetryLater):
        await dead.deliver(MEMBER, OutgoingMessage("x"))


class RecordingWebhook:
    platform = "wecom"

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], OutgoingMessage]] = []

    async def deliver(self, destination: dict[str, Any], message: OutgoingMessage) -> None:
        self.sent.append((destination, message))


async def test_webhook_kinds_delegate_to_the_webhook_deliverer(
    session: aiohttp.ClientSession, fake: FakeWeCom, db: Any
) -> None:
    from datetime import datetime

    hook = RecordingWebhook()
    deliverer = WeComDeliverer(session, api_base=fake.base_url, database=db, webhook=hook)
    now = datetime.now(UTC)
    async with db.transaction() as store:
        await store.bind(platform="wecom", org_key="wwcorp", chat_id="grp", chat_title="一组", user_id=None,
                         user_name=None, now=now)
        team_id = store.team.id
    with pytest.raises(PermanentFailure):  # no webhook configured yet
        await deliverer.deliver({"kind": "team", "team_id": team_id}, OutgoingMessage("站会"))
    async with db.transaction() as store:
        await store.bind(platform="wecom", org_key="wwcorp", chat_id="grp", chat_title="一组", user_id=None,
                         user_name=None, now=now)
        await store.update_team_settings({"wecom_webhook_key": "key-123456789"}, now)
    await deliverer.deliver({"kind": "team", "team_id": team_id}, OutgoingMessage("站会"))
    await deliverer.deliver({"kind": "webhook", "key": "k2"}, OutgoingMessage("日报"))
    assert [d for d, _ in hook.sent] == [{"kind": "webhook", "key": "key-123456789"}, {"kind": "webhook", "key": "k2"}]
    assert deliverer.rate_limit({"kind": "webhook", "key": "k"}).count == 20
    assert deliverer.max_bytes(MEMBER) == 2048 and deliverer.max_bytes({"kind": "webhook", "key": "k"}) == 4096
    assert "k2" not in dest_key({"kind": "webhook", "key": "k2"})


def test_render_keeps_native_mentions_only_for_webhooks() -> None:
    message = OutgoingMessage("请 <@u1> 跟进", title="提醒", names={"u1": "张三"})
    assert render_markdown(message, native_mentions=True) == "**提醒**\n请 <@u1> 跟进"
    assert render_markdown(message, native_mentions=False) == "**提醒**\n请 @张三 跟进"


async def test_token_cache_refreshes_by_clock_and_on_invalidate() -> None:
    now = [0.0]
    calls: list[int] = []

    async def fetch() -> tuple[str, float]:
        calls.append(1)
        return f"t{len(calls)}", 7200

    cache = TokenCache(fetch, clock=lambda: now[0])
    assert await cache.get() == "t1" and await cache.get() == "t1"
    now[0] = 7200 - 299
    assert await cache.get() == "t2"
    cache.invalidate("t1")  # stale invalidation does not drop the newer token
    assert await cache.get() == "t2"
    cache.invalidate("t2")
    assert await cache.get() == "t3"
