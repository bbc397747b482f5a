"""DingTalkDeliverer against the fake: channels, rendering, tokens and the platform's error codes.

Calls deliver() directly (the outbox worker lives on another branch); no database needed except where a
team's custom robot is read.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.adapters.dingtalk_send import DingTalkDeliverer, render
from bot.delivery import OutgoingMessage, PermanentFailure, RateLimit, RetryLater
from tests.dingtalk_support import dingtalk_settings
from tests.fakes.dingtalk import FakeDingTalk

MSG = OutgoingMessage(text="## 今日站会\n<@zhangsan> 请更新进度", names={"zhangsan": "张三"})


@pytest.fixture
async def ding() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk() as fake:
        yield fake


@pytest.fixture
def deliverer(ding: FakeDingTalk, http: aiohttp.ClientSession) -> DingTalkDeliverer:
    return DingTalkDeliverer(dingtalk_settings(ding), http)


def session_dest(ding: FakeDingTalk, url: str | None = None, expires_in_s: float = 3600) -> dict[str, object]:
    return {"kind": "session_webhook", "url": url or ding.new_session_webhook(),
            "expires_at": int((time.time() + expires_in_s) * 1000), "chat_id": "cid123",
            "fallback": {"kind": "team", "chat_id": "cid123"}}


def test_markdown_rendering_mentions_and_title() -> None:
    r = render(MSG)
    assert r.text == "## 今日站会\n@zhangsan 请更新进度" and r.at_user_ids == ["zhangsan"]
    assert r.title == "今日站会"
    assert render(OutgoingMessage(text="x", title="日报")).title == "日报"
    assert len(render(OutgoingMessage(text="很长" * 40)).title) <= 21


def test_limits(deliverer: DingTalkDeliverer) -> None:
    assert deliverer.rate_limit({"kind": "team", "chat_id": "c"}) == RateLimit(20, 60.0)
    assert deliverer.limit_key({"kind": "team", "chat_id": "c"}) == deliverer.limit_key(
        {"kind": "session_webhook", "chat_id": "c"})
    assert deliverer.max_bytes({"kind": "member", "user_ids": ["a"]}) <= 2048


async def test_session_webhook_markdown_with_at(deliverer: DingTalkDeliverer, ding: FakeDingTalk) -> None:
    await deliverer.deliver(session_dest(ding), MSG)
    [rec] = ding.session_messages()
    assert rec.json == {
        "msgtype": "markdown",
        "markdown": {"title": "今日站会", "text": "## 今日站会\n@zhangsan 请更新进度"},
        "at": {"atUserIds": ["zhangsan"], "isAtAll": False},
    }


async def test_session_webhook_on_a_foreign_host_is_never_posted(
    deliverer: DingTalkDeliverer, ding: FakeDingTalk
) -> None:
    for url in ("http://evil.example/robot/sendBySession?session=x",
                ding.api_base + "/robot/sendBySession?session=x",
                ding.oapi_base.replace("http://", "https://") + "/robot/sendBySession?session=x"):
        with pytest.raises(PermanentFailure, match="host"):
            await deliverer.deliver(session_dest(ding, url), MSG)
    assert ding.received == []


async def test_expired_session_falls_back_to_group_api_and_token_is_cached(
    deliverer: DingTalkDeliverer, ding: FakeDingTalk
) -> None:
    await deliverer.deliver(session_dest(ding, expires_in_s=-1), MSG)  # expired by its own timestamp
    dest = session_dest(ding)
    ding.expire_session_webhooks()  # expired according to DingTalk (300001)
    await deliverer.deliver(dest, MSG)
    groups = ding.group_messages("cid123")
    assert len(groups) == 2
    assert groups[0].msg_param == {"title": "今日站会", "text": "## 今日站会\n@zhangsan 请更新进度"}
    assert groups[0].json["robotCode"] == ding.app_key
    assert ding.oauth2_token_requests == 1


async def test_expired_token_is_refreshed_once(deliverer: DingTalkDeliverer, ding: FakeDingTalk) -> None:
    await deliverer.deliver({"kind": "team", "chat_id": "cid123"}, MSG)
    ding.expire_tokens()
    await deliverer.deliver({"kind": "team", "chat_id": "cid123"}, MSG)
    await deliverer.deliver({"kind": "member", "user_ids": ["lisi"]}, MSG)
    ding.expire_tokens()
    await deliverer.deliver({"kind": "member", "user_ids": ["lisi"]}, MSG)  # errcode 88 / sub_code 42001
    assert len(ding.group_messages()) == 2 and len(ding.work_notifications()) == 2
    assert ding.oauth2_token_requests == 3


async def test_direct_messages_use_work_notifications_or_the_1to1_api(
    ding: FakeDingTalk, http: aiohttp.ClientSession
) -> None:
    work = DingTalkDeliverer(dingtalk_settings(ding), http)
    await work.deliver({"kind": "member", "user_ids": ["lisi", "wangwu"]}, OutgoingMessage(text="日报", title="日报"))
    [notice] = ding.work_notifications()
    assert notice.json["agent_id"] == ding.agent_id and notice.json["userid_list"] == "lisi,wangwu"
    assert notice.json["msg"] == {"msgtype": "markdown", "markdown": {"title": "日报", "text": "日报"}}

    oto = DingTalkDeliverer(dingtalk_settings(ding, dingtalk_agent_id=None), http)
    await oto.deliver({"kind": "member", "user_ids": [f"u{i}" for i in range(25)]}, MSG)
    calls = ding.oto_messages()
    assert [len(c.json["userIds"]) for c in calls] == [20, 5] and calls[0].json["msgKey"] == "sampleMarkdown"


async def test_custom_robot_signs_each_request_and_maps_errors(
    deliverer: DingTalkDeliverer, ding: FakeDingTalk
) -> None:
    secret = "SECabcdef0123456789"
    url = ding.add_custom_robot("robotA", secret)
    dest = {"kind": "team", "chat_id": "cidX", "custom_robot": {"webhook": url, "secret": secret}}
    for _ in range(20):
        await deliverer.deliver(dest, MSG)
    assert len(ding.custom_robot_messages("robotA")) == 20
    with pytest.raises(RetryLater) as throttled:
        await deliverer.deliver(dest, MSG)
    assert throttled.value.after == 600

    url_b = ding.add_custom_robot("robotB", "SECtherealsecret000")
    with pytest.raises(PermanentFailure) as bad_sign:
        await deliverer.deliver(
            {"kind": "team", "chat_id": "c", "custom_robot": {"webhook": url_b, "secret": secret}}, MSG
        )
    assert bad_sign.value.destination_broken and "加签" in bad_sign.value.reason and secret not in bad_sign.value.reason

    url_c = ding.add_custom_robot("robotC", keywords=("日报",))
    with pytest.raises(PermanentFailure, match="关键词") as keyword:
        await deliverer.deliver({"kind": "team", "chat_id": "c", "custom_robot": {"webhook": url_c}}, MSG)
    assert keyword.value.destination_broken

    for code, msg in [
        (400102, "机器人已停用"),
        (400106, "机器人不存在"),
        (400013, "群已解散"),
        (400101, "access_token不存在"),
    ]:
        ding.fail_custom_robot("robotA", code, msg)
        with pytest.raises(PermanentFailure) as gone:
            await deliverer.deliver(dest, MSG)
        assert gone.value.destination_broken
    ding.fail_custom_robot("robotA", 130101, "send too fast, exceed 20 times per minute")
    with pytest.raises(RetryLater):
        await deliverer.deliver(dest, MSG)


async def test_group_api_errors(deliverer: DingTalkDeliverer, ding: FakeDingTalk) -> None:
    ding.fail_next(
        "/v1.0/robot/groupMessages/send", status=400, body={"code": "group.disbanded", "message": "群已解散"}
    )
    with pytest.raises(PermanentFailure) as gone:
        await deliverer.deliver({"kind": "team", "chat_id": "cid123"}, MSG)
    assert gone.value.destination_broken
    ding.fail_next("/v1.0/robot/groupMessages/send", status=503, body={"code": "ServiceUnavailable"})
    with pytest.raises(RetryLater):
        await deliverer.deliver({"kind": "team", "chat_id": "cid123"}, MSG)
