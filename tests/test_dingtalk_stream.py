"""Stream mode: the bot dials DingTalk's gateway (the fake), acks every frame, and reconnects."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from bot.adapters.dingtalk import STREAM_KEY
from storage.models import Customer, InboundMessage
from tests.dingtalk_support import RunningBot, count, dingtalk_settings, running_bot, text_of
from tests.fakes.dingtalk import FakeDingTalk


@pytest.fixture
async def ding() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk() as fake:
        yield fake


@pytest.fixture
async def bot(ding: FakeDingTalk, db) -> AsyncIterator[RunningBot]:  # type: ignore[no-untyped-def]
    settings = dingtalk_settings(ding, dingtalk_mode="stream")
    async with running_bot(settings, db, backoff_initial=0.01, backoff_max=0.05) as running:
        await ding.wait_for(lambda: ding.stream_connected)
        yield running


async def say(bot: RunningBot, ding: FakeDingTalk, text: str, staff: str, nick: str, **kw: object) -> list[str]:
    before = len(ding.session_messages()) + len(ding.group_messages())
    message_id = await ding.stream_push_robot_message(text, staff, nick, **kw)  # type: ignore[arg-type]
    ack = await ding.stream_wait_ack(message_id)
    assert ack.code == 200 and ack.echoes_data
    await bot.drain()
    sent = sorted(ding.session_messages() + ding.group_messages(), key=ding.received.index)
    return [text_of(r) for r in sent[before:]]


async def test_stream_flow_claim_duplicate_progress_help(bot: RunningBot, ding: FakeDingTalk) -> None:
    [open_] = ding.requests("stream_open")
    assert {"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"} in open_.json["subscriptions"]
    assert open_.json["clientId"] == ding.app_key
    assert "/dingtalk/robot" not in [r.resource.canonical for r in bot.app.router.routes() if r.resource]

    [reply] = await say(bot, ding, "认领 北京华为技术有限公司", "zhangsan", "张三")
    assert "认领成功" in reply
    [refusal] = await say(bot, ding, "认领 华为技术", "lisi", "李四")
    assert "撞单" in refusal and "@zhangsan" in refusal
    [progress] = await say(bot, ding, "跟进 华为 拜访采购部", "zhangsan", "张三")
    assert "华为" in progress
    [ask] = await say(bot, ding, "求助 华为 需要报价模板", "zhangsan", "张三")
    assert "求助 #1" in ask
    [taken] = await say(bot, ding, "接 #1", "lisi", "李四")
    assert "接下" in taken and "@lisi" in taken


async def test_stream_replay_three_times_has_one_effect(bot: RunningBot, ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        message_id = await ding.stream_push_robot_message("认领 腾讯科技", "zhangsan", "张三", msg_id="same-msg")
        assert (await ding.stream_wait_ack(message_id)).code == 200
    await bot.drain()
    assert await count(db, Customer) == 1 and await count(db, InboundMessage) == 1
    assert len(ding.session_messages()) == 1


async def test_keepalive_acked_and_reconnect_uses_a_new_ticket(bot: RunningBot, ding: FakeDingTalk) -> None:
    ping = await ding.stream_ping()
    assert (await ding.stream_wait_ack(ping)).echoes_data

    assert await ding.stream_drop() == 1
    await ding.wait_for(lambda: ding.stream_connections == 2 and ding.stream_connected)
    tickets = [r.query["ticket"] for r in ding.requests("stream_connect")]
    assert len(set(tickets)) == 2 and len(ding.requests("stream_open")) == 2

    notice = await ding.stream_send_disconnect()
    assert (await ding.stream_wait_ack(notice)).code == 200
    await ding.wait_for(lambda: ding.stream_connections == 3 and ding.stream_connected)
    assert bot.app[STREAM_KEY].connections == 3  # type: ignore[attr-defined]

    [reply] = await say(bot, ding, "认领 小米科技", "zhangsan", "张三")
    assert "认领成功" in reply


async def test_gateway_refusal_is_retried_with_backoff(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    ding.fail_next("/v1.0/gateway/connections/open", status=503, body={"code": "ServiceUnavailable"}, times=2)
    settings = dingtalk_settings(ding, dingtalk_mode="stream")
    async with running_bot(settings, db, backoff_initial=0.01, backoff_max=0.05):
        await ding.wait_for(lambda: ding.stream_connected)
        assert len(ding.requests("stream_open")) == 3


async def test_stream_event_user_leave_org_is_acked(bot: RunningBot, ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    await say(bot, ding, "认领 京东", "zhangsan", "张三")
    event_id = await ding.stream_push_event("user_leave_org", {"userId": ["zhangsan"]})
    assert (await ding.stream_wait_ack(event_id)).code == 200
    await bot.drain()
    [pool] = [g for g in ding.group_messages("cid123")]
    assert "公海" in text_of(pool) and "京东" in text_of(pool)


async def test_a_frame_nested_beyond_the_parser_is_ignored_and_the_connection_goes_on(
    bot: RunningBot, ding: FakeDingTalk
) -> None:
    connects = len(ding.requests("stream_open"))
    await ding.stream_send_raw("[" * 30_000 + "]" * 30_000)
    nested_data = {"headers": {"messageId": "m-deep", "topic": "/v1.0/im/bot/messages/get"}, "type": "CALLBACK",
                   "data": "[" * 30_000 + "]" * 30_000}
    await ding.stream_send_raw(json.dumps(nested_data))
    [reply] = await say(bot, ding, "认领 北京华为技术有限公司", "zhangsan", "张三")
    assert "认领成功" in reply
    assert len(ding.requests("stream_open")) == connects  # the same connection carried on
