"""Self-tests for the fake DingTalk server (tests/fakes/dingtalk.py).

The fake is the yardstick the DingTalk adapter is measured against, so it is itself checked against the
protocol facts and official vectors in PLATFORMS.md (§3, §4, §6).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.fakes.dingtalk import (
    CUSTOM_ROBOT_BLOCK_SECONDS,
    ROBOT_MESSAGE_TOPIC,
    SESSION_WEBHOOK_TTL_SECONDS,
    TOKEN_TTL_SECONDS,
    EventResponseError,
    FakeDingTalk,
    ManualClock,
    StreamSubscriptionError,
    dingtalk_sign,
    dingtalk_sign_urlencoded,
)

ROBOT_SUBSCRIPTIONS = [
    {"type": "EVENT", "topic": "*"},
    {"type": "CALLBACK", "topic": ROBOT_MESSAGE_TOPIC},
]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def ding(clock: ManualClock) -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk(clock=clock.monotonic, wall_clock=clock.time) as fake:
        yield fake


async def post_json(
    http: aiohttp.ClientSession, url: str | URL, body: Any, **kwargs: Any
) -> tuple[int, Any]:
    async with http.post(url, json=body, **kwargs) as resp:
        return resp.status, await resp.json()


async def legacy_token(http: aiohttp.ClientSession, ding: FakeDingTalk) -> str:
    async with http.get(
        f"{ding.oapi_base}/gettoken", params={"appkey": ding.app_key, "appsecret": ding.app_secret}
    ) as resp:
        data = await resp.json()
    assert data["errcode"] == 0
    return str(data["access_token"])


def md_notification(ding: FakeDingTalk) -> dict[str, Any]:
    return {
        "agent_id": ding.agent_id,
        "userid_list": "manager1,manager2",
        "msg": {"msgtype": "markdown", "markdown": {"title": "日报", "text": "## 今日跟进 3 条"}},
    }


def group_body(ding: FakeDingTalk, **overrides: Any) -> dict[str, Any]:
    body = {
        "robotCode": ding.robot_code,
        "openConversationId": "cid123",
        "msgKey": "sampleMarkdown",
        "msgParam": json.dumps({"title": "站会", "text": "### 今日站会"}, ensure_ascii=False),
    }
    body.update(overrides)
    return body


# ------------------------------------------------------------------------------------ server basics


async def test_listens_on_ephemeral_ports_of_localhost() -> None:
    async with FakeDingTalk() as a, FakeDingTalk() as b:
        urls = [a.oapi_base, a.api_base, b.oapi_base, b.api_base]
        assert all(u.startswith("http://127.0.0.1:") for u in urls)
        ports = {URL(u).port for u in urls}
        assert len(ports) == 4 and 0 not in ports


async def test_hosts_are_separate_and_unknown_routes_are_recorded(
    ding: FakeDingTalk, http: aiohttp.ClientSession
) -> None:
    # A new-API path on the legacy host must not work, as on the real platform.
    status, data = await post_json(http, f"{ding.oapi_base}/v1.0/robot/groupMessages/send", group_body(ding))
    assert status == 404 and data["errcode"] == 404
    assert ding.received[-1].kind == "unknown"


# ------------------------------------------------------------------------------------ signatures (§6 V6)


def test_hmac_helper_matches_platforms_v6_reference_values() -> None:
    assert dingtalk_sign("this is secret", 1577262236757) == "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM="
    assert dingtalk_sign("testappSecret", "1546084445901") == "fYP0TV8RJULxGabs59wSO94FZbNekbH7ebQJu2oy+/0="
    assert (
        dingtalk_sign_urlencoded("testappSecret", 1546084445901)
        == "fYP0TV8RJULxGabs59wSO94FZbNekbH7ebQJu2oy%2B%2F0%3D"
    )
    # Official FAQ vector for the bare primitive (different message: the timestamp alone).
    primitive = hmac.new(b"testappSecret", b"1546084445901", hashlib.sha256).digest()
    assert base64.b64encode(primitive).decode() == "HCbG3xNE3vzhO+u7qCUL1jS5hsu2n5r2cFhnTrtyDAE="


async def test_robot_text_callback_is_signed_and_shaped_like_dingtalk(
    ding: FakeDingTalk, clock: ManualClock
) -> None:
    headers, body = ding.robot_text_callback("认领 华为", "zhangsan", "张三", at_users=("lisi",))
    ts = int(headers["timestamp"])
    assert ts == int(clock.time() * 1000)
    expected = base64.b64encode(
        hmac.new(b"appsecret", f"{ts}\nappsecret".encode(), hashlib.sha256).digest()
    ).decode()
    assert headers["sign"] == expected  # header value is not URL-encoded

    msg = json.loads(body)
    assert msg["msgtype"] == "text"
    assert msg["text"]["content"] == " 认领 华为"  # leading space where "@bot" was
    assert msg["createAt"] == ts
    assert msg["conversationType"] == "2"
    assert msg["conversationId"] == "cid123"
    assert msg["conversationTitle"] == "销售一组"
    assert msg["senderStaffId"] == "zhangsan" and msg["senderNick"] == "张三"
    assert msg["senderId"] != "zhangsan" and msg["senderId"].startswith("$:LWCP_v1:$")
    assert msg["senderCorpId"] == msg["chatbotCorpId"] == ding.corp_id
    assert msg["sessionWebhook"].startswith(f"{ding.oapi_base}/robot/sendBySession?session=")
    assert msg["sessionWebhookExpiredTime"] == ts + 90 * 60 * 1000
    assert msg["isInAtList"] is True and msg["isAdmin"] is False
    assert msg["robotCode"] == ding.app_key  # internal-app robot code defaults to the AppKey
    assert {"dingtalkId": msg["chatbotUserId"]} in msg["atUsers"]
    assert {"dingtalkId": ding.encrypted_id("lisi"), "staffId": "lisi"} in msg["atUsers"]
    assert msg["msgId"]


async def test_robot_callback_timestamp_can_be_made_stale(ding: FakeDingTalk, clock: ManualClock) -> None:
    stale = int(clock.time() * 1000) - 2 * 3600 * 1000
    headers, _ = ding.robot_text_callback("你好", "zhangsan", "张三", timestamp=stale, msg_id="msg-fixed")
    assert headers["timestamp"] == str(stale)
    assert headers["sign"] == dingtalk_sign(ding.app_secret, stale)


def test_single_chat_callback_has_no_title_and_no_leading_space() -> None:
    ding = FakeDingTalk(robot_code="robot-x")
    msg = ding.robot_message("帮助", "zhangsan", "张三", conversation_type="1")
    assert "conversationTitle" not in msg
    assert msg["text"]["content"] == "帮助"
    assert msg["robotCode"] == "robot-x"


# ------------------------------------------------------------------------------------ sessionWebhook


async def test_session_webhook_records_replies_and_expires_after_90_minutes(
    ding: FakeDingTalk, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    _, body = ding.robot_text_callback("今日跟进", "zhangsan", "张三")
    webhook = json.loads(body)["sessionWebhook"]
    reply = {"msgtype": "text", "text": {"content": "@zhangsan 已记录"}, "at": {"atUserIds": ["zhangsan"]}}
    assert await post_json(http, webhook, reply) == (200, {"errcode": 0, "errmsg": "ok"})
    [rec] = ding.session_messages()
    assert rec.json == reply and rec.json["at"]["atUserIds"] == ["zhangsan"]
    assert ding.session_messages(webhook) == [rec]

    clock.advance(SESSION_WEBHOOK_TTL_SECONDS - 1)
    assert (await post_json(http, webhook, reply))[1]["errcode"] == 0
    clock.advance(1)
    status, data = await post_json(http, webhook, reply)
    assert status == 200 and data["errcode"] == 300001
    assert len(ding.session_messages()) == 2  # the rejected post is recorded but not "sent"
    assert not ding.received[-1].accepted


async def test_session_webhook_rejects_unknown_session_and_bad_content(
    ding: FakeDingTalk, http: aiohttp.ClientSession
) -> None:
    status, data = await post_json(http, f"{ding.oapi_base}/robot/sendBySession?session=nope", {"msgtype": "text"})
    assert data["errcode"] == 300001
    webhook = ding.new_session_webhook()
    async with http.post(webhook, data=b'{"msgtype":"text","text":{"content":"x"}}') as resp:
        assert (await resp.json())["errcode"] == 43004  # Content-Type must be application/json
    assert (await post_json(http, webhook, {"msgtype": "image"}))[1]["errcode"] == 400105
    ding.expire_session_webhooks()
    assert (await post_json(http, webhook, {"msgtype": "text", "text": {"content": "x"}}))[1]["errcode"] == 300001
    assert ding.session_messages() == []


# ------------------------------------------------------------------------------------ access tokens


async def test_legacy_and_new_token_endpoints(ding: FakeDingTalk, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{ding.oapi_base}/gettoken", params={"appkey": "dingappkey", "appsecret": "appsecret"}) as r:
        first = await r.json()
    assert first["errcode"] == 0 and first["expires_in"] == TOKEN_TTL_SECONDS and first["access_token"]
    # Repeated requests inside the validity window return the same token.
    assert await legacy_token(http, ding) == first["access_token"]

    status, data = await post_json(
        http, f"{ding.api_base}/v1.0/oauth2/accessToken", {"appKey": "dingappkey", "appSecret": "appsecret"}
    )
    assert status == 200 and data == {"accessToken": first["access_token"], "expireIn": TOKEN_TTL_SECONDS}

    async with http.get(f"{ding.oapi_base}/gettoken", params={"appkey": "dingappkey", "appsecret": "bad"}) as r:
        assert (await r.json())["errcode"] == 40096
    status, data = await post_json(
        http, f"{ding.api_base}/v1.0/oauth2/accessToken", {"appKey": "dingappkey", "appSecret": "bad"}
    )
    assert status == 400 and data["code"] == "invalidClientIdOrSecret"
    assert ding.token_requests == 5
    assert (ding.legacy_token_requests, ding.oauth2_token_requests) == (3, 2)


async def test_expire_tokens_invalidates_old_tokens_on_both_hosts(
    ding: FakeDingTalk, http: aiohttp.ClientSession
) -> None:
    token = await legacy_token(http, ding)
    work_url = f"{ding.oapi_base}/topapi/message/corpconversation/asyncsend_v2"
    group_url = f"{ding.api_base}/v1.0/robot/groupMessages/send"
    assert (await post_json(http, work_url, md_notification(ding), params={"access_token": token}))[1]["errcode"] == 0
    status, _ = await post_json(http, group_url, group_body(ding), headers={"x-acs-dingtalk-access-token": token})
    assert status == 200

    ding.expire_tokens()
    _, data = await post_json(http, work_url, md_notification(ding), params={"access_token": token})
    assert data["errcode"] == 88 and data["sub_code"] == "42001"  # legacy gateway wraps auth errors in 88
    status, data = await post_json(http, group_url, group_body(ding), headers={"x-acs-dingtalk-access-token": token})
    assert status == 400 and data["code"] == "InvalidAuthentication"

    fresh = await legacy_token(http, ding)
    assert fresh != token
    assert (await post_json(http, work_url, md_notification(ding), params={"access_token": fresh}))[1]["errcode"] == 0
    assert len(ding.work_notifications()) == 2


async def test_tokens_expire_after_7200s_and_are_read_from_the_right_place(
    clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    async with FakeDingTalk(
        clock=clock.monotonic, wall_clock=clock.time, legacy_auth_errors="plain", api_auth_error_status=401
    ) as ding:
        token = await legacy_token(http, ding)
        work_url = f"{ding.oapi_base}/topapi/message/corpconversation/asyncsend_v2"
        group_url = f"{ding.api_base}/v1.0/robot/groupMessages/send"
        # Legacy host ignores the header; new host ignores the query.
        _, data = await post_json(http, work_url, md_notification(ding), headers={"x-acs-dingtalk-access-token": token})
        assert data["errcode"] == 41001
        status, data = await post_json(http, group_url, group_body(ding), params={"access_token": token})
        assert status == 400 and data["code"] == "AuthenticationFailed.MissingParameter"
        _, data = await post_json(http, work_url, md_notification(ding), params={"access_token": "forged"})
        assert data["errcode"] == 40014

        clock.advance(TOKEN_TTL_SECONDS)
        assert ding.current_token is None
        _, data = await post_json(http, work_url, md_notification(ding), params={"access_token": token})
        assert data["errcode"] == 42001
        auth = {"x-acs-dingtalk-access-token": token}
        status, data = await post_json(http, group_url, group_body(ding), headers=auth)
        assert status == 401 and data["code"] == "InvalidAuthentication"


# ------------------------------------------------------------------------------------ Robot OpenAPI


async def test_group_and_oto_sends_validate_like_the_platform(ding: FakeDingTalk, http: aiohttp.ClientSession) -> None:
    token = await legacy_token(http, ding)
    auth = {"x-acs-dingtalk-access-token": token}
    group_url = f"{ding.api_base}/v1.0/robot/groupMessages/send"

    status, data = await post_json(http, group_url, group_body(ding), headers=auth)
    assert status == 200 and set(data) == {"processQueryKey"}
    [rec] = ding.group_messages("cid123")
    assert rec.msg_param == {"title": "站会", "text": "### 今日站会"}

    async def code_of(body: dict[str, Any], url: str = group_url) -> tuple[int, str]:
        status, data = await post_json(http, url, body, headers=auth)
        return status, data["code"]

    assert await code_of(group_body(ding, robotCode="someoneelse")) == (400, "invalidParameter.robotCode.notExsit")
    assert await code_of(group_body(ding, robotCode="")) == (400, "invalidParameter.robotCode.empty")
    assert await code_of(group_body(ding, msgParam="{not json")) == (400, "invalidParameter.msgParam.invalid")
    assert await code_of(group_body(ding, msgParam={"content": "object, not string"})) == (
        400,
        "invalidParameter.msgParam.invalid",
    )
    too_long = json.dumps({"title": "t", "text": "长" * 5001}, ensure_ascii=False)  # 15 003+ bytes
    assert await code_of(group_body(ding, msgParam=too_long)) == (400, "invalidParameter.msgParam.tooLong")
    just_fits = json.dumps({"title": "t", "text": "x" * (15000 - 26)})
    assert len(just_fits.encode()) == 15000  # the limit itself is allowed
    assert (await post_json(http, group_url, group_body(ding, msgParam=just_fits), headers=auth))[0] == 200
    assert await code_of(group_body(ding, msgKey="sampleNope")) == (400, "invalidParameter.msgKey.invalid")
    assert await code_of(group_body(ding, openConversationId="")) == (400, "miss.openConversationId")
    assert len(ding.group_messages()) == 2

    oto_url = f"{ding.api_base}/v1.0/robot/oToMessages/batchSend"
    oto = {
        "robotCode": ding.robot_code,
        "userIds": ["zhangsan"],
        "msgKey": "sampleText",
        "msgParam": '{"content":"hi"}',
    }
    status, data = await post_json(http, oto_url, oto, headers=auth)
    assert status == 200 and data["processQueryKey"] and data["invalidStaffIdList"] == []
    assert [r.msg_param for r in ding.oto_messages("zhangsan")] == [{"content": "hi"}]
    assert await code_of({**oto, "userIds": [f"u{i}" for i in range(21)]}, oto_url) == (
        400,
        "invalidParameter.userIds.overMax",
    )
    assert await code_of({**oto, "userIds": []}, oto_url) == (400, "invalidParameter.userIds.empty")
    ding.valid_staff_ids = {"zhangsan"}
    _, data = await post_json(http, oto_url, {**oto, "userIds": ["zhangsan", "ghost"]}, headers=auth)
    assert data["invalidStaffIdList"] == ["ghost"]


async def test_injected_failures_are_answered_then_cleared(ding: FakeDingTalk, http: aiohttp.ClientSession) -> None:
    token = await legacy_token(http, ding)
    ding.fail_next("/v1.0/robot/groupMessages/send", times=2)
    url = f"{ding.api_base}/v1.0/robot/groupMessages/send"
    auth = {"x-acs-dingtalk-access-token": token}
    assert (await post_json(http, url, group_body(ding), headers=auth))[0] == 500
    assert (await post_json(http, url, group_body(ding), headers=auth))[0] == 500
    assert (await post_json(http, url, group_body(ding), headers=auth))[0] == 200
    assert len(ding.requests("group_message")) == 3 and len(ding.group_messages()) == 1


# ------------------------------------------------------------------------------------ work notification


async def test_work_notification(ding: FakeDingTalk, http: aiohttp.ClientSession) -> None:
    token = await legacy_token(http, ding)
    url = f"{ding.oapi_base}/topapi/message/corpconversation/asyncsend_v2"
    status, data = await post_json(http, url, md_notification(ding), params={"access_token": token})
    assert status == 200 and data["errcode"] == 0 and isinstance(data["task_id"], int) and data["request_id"]
    [rec] = ding.work_notifications()
    assert rec.json["msg"]["markdown"]["title"] == "日报"

    _, data = await post_json(http, url, {**md_notification(ding), "agent_id": 999}, params={"access_token": token})
    assert data["errcode"] == 41020
    as_list = {**md_notification(ding), "userid_list": ["manager1"]}  # must be a comma-separated string
    assert (await post_json(http, url, as_list, params={"access_token": token}))[1]["errcode"] == 40035
    camel = {**md_notification(ding), "msg": {"msgtype": "actionCard", "actionCard": {}}}  # it's action_card here
    assert (await post_json(http, url, camel, params={"access_token": token}))[1]["errcode"] == 40035
    assert len(ding.work_notifications()) == 1


# ------------------------------------------------------------------------------------ custom robot


def signed_url(ding: FakeDingTalk, token: str, secret: str, ts: int) -> URL:
    return URL(f"{ding.oapi_base}/robot/send").with_query(
        {"access_token": token, "timestamp": str(ts), "sign": dingtalk_sign(secret, ts)}
    )


TEXT = {"msgtype": "text", "text": {"content": "新客户：华为"}}


async def test_custom_robot_sign_timestamp_and_unknown_token(
    ding: FakeDingTalk, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    ding.add_custom_robot("robot1", secret="SECabc")
    now_ms = int(clock.time() * 1000)
    ok_answer = (await post_json(http, signed_url(ding, "robot1", "SECabc", now_ms), TEXT))[1]
    assert ok_answer == {"errcode": 0, "errmsg": "ok"}
    assert [r.json for r in ding.custom_robot_messages("robot1")] == [TEXT]

    _, data = await post_json(http, signed_url(ding, "robot1", "SECwrong", now_ms), TEXT)
    assert data == {"errcode": 310000, "errmsg": "sign not match"}
    _, data = await post_json(http, signed_url(ding, "robot1", "SECabc", now_ms - 3601 * 1000), TEXT)
    assert data == {"errcode": 310000, "errmsg": "invalid timestamp"}
    _, data = await post_json(http, f"{ding.oapi_base}/robot/send?access_token=robot1", TEXT)
    assert data["errcode"] == 310000  # 加签 robot without timestamp/sign
    _, data = await post_json(http, f"{ding.oapi_base}/robot/send?access_token=nope", TEXT)
    assert data["errcode"] == 400101

    # A sign put into the URL without URL-encoding loses its '+' (decoded as space) → mismatch.
    ts = next(t for t in range(now_ms, now_ms + 10_000) if "+" in dingtalk_sign("SECabc", t))
    raw = f"{ding.oapi_base}/robot/send?access_token=robot1&timestamp={ts}&sign={dingtalk_sign('SECabc', ts)}"
    assert (await post_json(http, URL(raw, encoded=True), TEXT))[1]["errmsg"] == "sign not match"
    ok = f"{ding.oapi_base}/robot/send?access_token=robot1&timestamp={ts}&sign={dingtalk_sign_urlencoded('SECabc', ts)}"
    assert (await post_json(http, URL(ok, encoded=True), TEXT))[1]["errcode"] == 0
    assert len(ding.custom_robot_messages("robot1")) == 2


async def test_custom_robot_keywords(ding: FakeDingTalk, http: aiohttp.ClientSession) -> None:
    url = ding.add_custom_robot("robot-kw", keywords=["销售"])
    _, data = await post_json(http, url, TEXT)
    assert data == {"errcode": 310000, "errmsg": "keywords not in content"}
    md = {"msgtype": "markdown", "markdown": {"title": "销售日报", "text": "## 今日"}}
    assert (await post_json(http, url, md))[1]["errcode"] == 0


async def test_custom_robot_410100_after_20_per_minute_then_blocked_10_minutes(
    ding: FakeDingTalk, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    url = ding.add_custom_robot("robot2")
    for _ in range(20):
        assert (await post_json(http, url, TEXT))[1]["errcode"] == 0
        clock.advance(1)
    _, data = await post_json(http, url, TEXT)
    assert data["errcode"] == 410100
    blocked_at = clock.monotonic()
    assert ding.custom_robot_blocked_until("robot2") == blocked_at + CUSTOM_ROBOT_BLOCK_SECONDS

    clock.advance(120)  # the minute window has long passed, but the penalty holds
    assert (await post_json(http, url, TEXT))[1]["errcode"] == 410100
    clock.advance(CUSTOM_ROBOT_BLOCK_SECONDS - 120 - 1)
    assert (await post_json(http, url, TEXT))[1]["errcode"] == 410100
    clock.advance(1)
    assert (await post_json(http, url, TEXT))[1]["errcode"] == 0
    assert ding.custom_robot_blocked_until("robot2") is None
    assert len(ding.custom_robot_messages("robot2")) == 21


async def test_custom_robot_window_slides(ding: FakeDingTalk, clock: ManualClock, http: aiohttp.ClientSession) -> None:
    url = ding.add_custom_robot("robot3")
    for _ in range(10):
        assert (await post_json(http, url, TEXT))[1]["errcode"] == 0
    clock.advance(30)
    for _ in range(10):
        assert (await post_json(http, url, TEXT))[1]["errcode"] == 0
    clock.advance(30)  # the first ten are now 60 s old and leave the window
    for _ in range(10):
        assert (await post_json(http, url, TEXT))[1]["errcode"] == 0
    assert (await post_json(http, url, TEXT))[1]["errcode"] == 410100


async def test_fail_custom_robot(ding: FakeDingTalk, clock: ManualClock, http: aiohttp.ClientSession) -> None:
    url = ding.add_custom_robot("robot4")
    ding.fail_custom_robot("robot4", 400102, "机器人已停用", for_seconds=60)
    assert (await post_json(http, url, TEXT))[1] == {"errcode": 400102, "errmsg": "机器人已停用"}
    clock.advance(60)
    assert (await post_json(http, url, TEXT))[1]["errcode"] == 0
    ding.fail_custom_robot("robot4", 300005, "token is not exist")
    clock.advance(3600)
    assert (await post_json(http, url, TEXT))[1]["errcode"] == 300005
    ding.clear_custom_robot_failure("robot4")
    assert (await post_json(http, url, TEXT))[1]["errcode"] == 0


# ------------------------------------------------------------------------------------ event crypto (§6 V4/V5)

V4 = {
    "token": "mryue",
    "aes_key": "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7",
    "key": "ding6ccabc44d2c8d38b",
    "signature": "03044561471240d4a14bb09372dfcfd4fd0e40cb",
    "timestamp": "1608001896814",
    "nonce": "WL4PK6yA",
    "encrypt": "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+"
    "HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3",
}
V5 = {
    "token": "123456",
    "aes_key": "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij",
    "key": "suite4xxxxxxxxxxxxxxx",
    "signature": "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0",
    "timestamp": "1445827045067",
    "nonce": "nEXhMP4r",
    "encrypt": "1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfx"
    "jZ8Ej23JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanf"
    "wjXuQ9+0pZcy0w9lQ==",
    "plaintext": '{"EventType":"check_create_suite_url","Random":"LPIdSnlF","TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}',
    "encrypted_signature": "bcf6dcefa4ce2dbaf7b0666c7264d46fd9aad4bd",
    "encrypted": "5DJFWzjRNOQk+5GSZxW+VrFMDWCIidPjEjg3//gm5x556BedVi62rDj1F9uXU97a4jw1R4FACUv9RCpoDobNqxhxRB2Yt"
    "W901k4KHbP1/wpFJ3xdLG0n0A8U1VhENg80zKJd+YROR0YMGum4WYuoXJ6J98vt0ihYeIFoapNddLML5MyNAGM9saSpko"
    "uDMSvD+iU14i7V8ix1ia1Tb9ogog==",
}


def fake_for(vector: dict[str, str]) -> FakeDingTalk:
    return FakeDingTalk(event_token=vector["token"], event_aes_key=vector["aes_key"], event_owner_key=vector["key"])


def test_v4_official_dingtalk_vector_decrypts_through_the_fake() -> None:
    ding = fake_for(V4)
    envelope = {k: V4[k] for k in ("nonce", "encrypt")} | {
        "msg_signature": V4["signature"],
        "timeStamp": V4["timestamp"],
    }
    assert ding.decrypt_event_response(json.dumps(envelope)) == '{"EventType":"check_url"}'
    query = {"signature": V4["signature"], "timestamp": V4["timestamp"], "nonce": V4["nonce"]}
    assert ding.open_event_callback(query, json.dumps({"encrypt": V4["encrypt"]})) == '{"EventType":"check_url"}'
    with pytest.raises(EventResponseError):
        ding.open_event_callback({**query, "nonce": "tampered"}, json.dumps({"encrypt": V4["encrypt"]}))


def test_v5_sdk_vectors_encrypt_and_decrypt_through_the_fake() -> None:
    ding = fake_for(V5)
    query = {"signature": V5["signature"], "timestamp": V5["timestamp"], "nonce": V5["nonce"]}
    assert json.loads(ding.open_event_callback(query, json.dumps({"encrypt": V5["encrypt"]}))) == json.loads(
        V5["plaintext"]
    )
    q, body = ding.event_callback(
        json.loads(V5["plaintext"]), timestamp=V5["timestamp"], nonce=V5["nonce"], random_prefix="1234567890123456"
    )
    assert q == {
        "signature": V5["encrypted_signature"],
        "msg_signature": V5["encrypted_signature"],
        "timestamp": V5["timestamp"],
        "nonce": V5["nonce"],
    }
    assert json.loads(body) == {"encrypt": V5["encrypted"]}


def test_event_callback_round_trip_and_bot_answer_checks() -> None:
    ding = FakeDingTalk()  # owner key defaults to the AppKey
    query, body = ding.event_callback({"EventType": "user_add_org", "UserId": ["zhangsan"]})
    assert set(query) == {"signature", "msg_signature", "timestamp", "nonce"}
    assert json.loads(ding.open_event_callback(query, body)) == {"EventType": "user_add_org", "UserId": ["zhangsan"]}

    # What the bot would answer, built independently with dingtalk-sdk.
    from dingtalk.crypto import DingTalkCrypto

    answer = DingTalkCrypto("tok", ding.event_aes_key, "dingappkey").encrypt_message("success")
    assert set(answer) == {"msg_signature", "timeStamp", "nonce", "encrypt"}
    assert ding.decrypt_event_response(json.dumps(answer).encode()) == "success"

    with pytest.raises(EventResponseError):
        ding.decrypt_event_response(json.dumps({**answer, "nonce": "other"}))
    with pytest.raises(EventResponseError):
        ding.decrypt_event_response(json.dumps({k: v for k, v in answer.items() if k != "timeStamp"}))
    wrong_receiver = DingTalkCrypto("tok", ding.event_aes_key, "corp-instead-of-appkey").encrypt_message("success")
    with pytest.raises(EventResponseError, match="receive-id"):
        ding.decrypt_event_response(json.dumps(wrong_receiver))


# ------------------------------------------------------------------------------------ Stream mode


async def open_stream(
    http: aiohttp.ClientSession, ding: FakeDingTalk, subscriptions: list[dict[str, str]] = ROBOT_SUBSCRIPTIONS
) -> dict[str, Any]:
    status, data = await post_json(
        http,
        f"{ding.api_base}/v1.0/gateway/connections/open",
        {
            "clientId": ding.app_key,
            "clientSecret": ding.app_secret,
            "subscriptions": subscriptions,
            "ua": "salesbot-test/1.0",
            "localIp": "127.0.0.1",
        },
    )
    assert status == 200, data
    return dict(data)


async def test_stream_open_rejects_wrong_secret_and_tickets_are_one_shot(
    ding: FakeDingTalk, http: aiohttp.ClientSession
) -> None:
    status, data = await post_json(
        http,
        f"{ding.api_base}/v1.0/gateway/connections/open",
        {"clientId": ding.app_key, "clientSecret": "bad", "subscriptions": ROBOT_SUBSCRIPTIONS},
    )
    assert status == 401 and data["code"] == "authFailed"

    conn = await open_stream(http, ding)
    assert conn["endpoint"] == f"ws://127.0.0.1:{URL(ding.api_base).port}/stream"
    url = URL(conn["endpoint"]).with_query({"ticket": conn["ticket"]})
    async with http.ws_connect(url) as ws:
        await ding.wait_for(lambda: ding.stream_connected)
        with pytest.raises(aiohttp.WSServerHandshakeError) as reused:
            async with http.ws_connect(url):
                pass
        assert reused.value.status == 401
        await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError):
        async with http.ws_connect(URL(conn["endpoint"]).with_query({"ticket": "made-up"})):
            pass
    assert ding.stream_connections == 1
    assert [r.status for r in ding.requests("stream_connect")] == [101, 401, 401]


async def test_stream_push_ack_ping_drop_and_reconnect(ding: FakeDingTalk, http: aiohttp.ClientSession) -> None:
    conn = await open_stream(http, ding)
    async with http.ws_connect(URL(conn["endpoint"]).with_query({"ticket": conn["ticket"]})) as ws:
        message_id = await ding.stream_push_robot_message("认领 华为", "zhangsan", "张三", msg_id="msgA")
        frame = await ws.receive_json(timeout=5)
        assert frame["type"] == "CALLBACK" and frame["specVersion"] == "1.0"
        headers = frame["headers"]
        assert headers["messageId"] == message_id
        assert headers["topic"] == ROBOT_MESSAGE_TOPIC
        assert headers["contentType"] == "application/json"
        assert headers["appId"] == ding.stream_app_id and headers["connectionId"] and headers["time"].isdigit()
        assert isinstance(frame["data"], str)  # a JSON string inside the JSON frame
        data = json.loads(frame["data"])
        assert data["msgId"] == "msgA" and data["text"]["content"] == " 认领 华为"
        assert data["senderStaffId"] == "zhangsan" and data["robotCode"] == ding.robot_code
        assert data["sessionWebhook"].startswith(f"{ding.oapi_base}/robot/sendBySession?session=")

        await ws.send_json(
            {
                "code": 200,
                "headers": {"contentType": "application/json", "messageId": message_id},
                "message": "OK",
                "data": frame["data"],
            }
        )
        ack = await ding.stream_wait_ack(message_id)
        assert ack.code == 200 and ack.echoes_data and ack.frame == frame

        ping_id = await ding.stream_ping()
        ping = await ws.receive_json(timeout=5)
        assert ping["type"] == "SYSTEM" and ping["headers"]["topic"] == "ping"
        assert "opaque" in json.loads(ping["data"])
        await ws.send_json({"code": 200, "headers": {"messageId": ping_id}, "message": "OK", "data": ping["data"]})
        assert (await ding.stream_wait_ack(ping_id)).echoes_data
        assert [a.message_id for a in ding.stream_acks] == [message_id, ping_id]

        assert await ding.stream_drop() == 1
        closed = await ws.receive(timeout=5)
        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert not ding.stream_connected

    # Reconnect: a new open → a new ticket; the old one stays spent.
    again = await open_stream(http, ding)
    assert again["ticket"] != conn["ticket"]
    async with http.ws_connect(URL(again["endpoint"]).with_query({"ticket": again["ticket"]})):
        await ding.wait_for(lambda: ding.stream_connections == 2)
        assert ding.stream_connected


async def test_stream_requires_the_robot_callback_subscription(
    ding: FakeDingTalk, http: aiohttp.ClientSession
) -> None:
    conn = await open_stream(http, ding, subscriptions=[{"type": "EVENT", "topic": "*"}])
    async with http.ws_connect(URL(conn["endpoint"]).with_query({"ticket": conn["ticket"]})) as ws:
        with pytest.raises(StreamSubscriptionError):
            await ding.stream_push_robot_message("hi", "zhangsan", "张三")
        event_id = await ding.stream_push_event("user_add_org", {"userId": ["zhangsan"]})
        frame = await ws.receive_json(timeout=5)
        assert frame["type"] == "EVENT" and frame["headers"]["eventType"] == "user_add_org"
        assert frame["headers"]["messageId"] == event_id


# ------------------------------------------------------------------------------------ waiting


async def test_wait_for_is_woken_by_requests_and_times_out(ding: FakeDingTalk, http: aiohttp.ClientSession) -> None:
    webhook = ding.new_session_webhook()
    sender = asyncio.create_task(post_json(http, webhook, {"msgtype": "text", "text": {"content": "ok"}}))
    [rec] = await ding.wait_for(lambda: ding.session_messages(), timeout=5)
    assert rec.json["text"]["content"] == "ok"
    await sender
    with pytest.raises(TimeoutError, match="condition not met"):
        await ding.wait_for(lambda: ding.work_notifications(), timeout=0.05)
