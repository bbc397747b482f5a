"""WeCom callbacks end to end: FakeWeCom builds what WeCom would POST, the real app answers over HTTP."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp.test_utils import TestClient

from bot.delivery import OutgoingMessage
from storage.database import Database
from tests.fakes.wecom import FakeWeCom, WeComCrypto
from tests.test_fake_wecom import (
    V1_CORP,
    V1_GET,
    V1_KEY,
    V1_POST_ENCRYPT,
    V1_POST_NONCE,
    V1_POST_SIG,
    V1_POST_TS,
    V1_TOKEN,
    V3_CORP,
    V3_DECRYPT_ENCRYPT,
    V3_ECHOSTR,
    V3_KEY,
    V3_TOKEN,
)
from tests.wecom_support import (
    AIBOT_KEY,
    WALL,
    Customer,
    InboundMessage,
    MakeClient,
    OutboxMessage,
    adapter,
    count,
    outbox_rows,
    post_aibot,
    post_app,
    say,
)


# --------------------------------------------------------------------------------- official vectors
async def test_v1_vector_through_app_routes(make_client: MakeClient, fake: FakeWeCom, db: Database) -> None:
    client = await make_client(
        wall=int(V1_POST_TS),
        wecom_corp_id=V1_CORP, wecom_app_token=V1_TOKEN, wecom_app_aes_key=V1_KEY, wecom_app_secret=None,
    )
    async with client.get("/wecom/app", params=V1_GET) as resp:
        assert resp.status == 200
        assert await resp.read() == b"1616140317555161061"
    envelope = (
        f"<xml><ToUserName><![CDATA[{V1_CORP}]]></ToUserName>"
        f"<Encrypt><![CDATA[{V1_POST_ENCRYPT}]]></Encrypt></xml>"
    )
    query = {"msg_signature": V1_POST_SIG, "timestamp": V1_POST_TS, "nonce": V1_POST_NONCE}
    async with client.post("/wecom/app", params=query, data=envelope.encode()) as resp:
        assert resp.status == 200
        body = await resp.text()
    # The passive reply decrypts with an independent implementation, receiveid = the corp id.
    import xml.etree.ElementTree as ET

    fields = {c.tag: c.text or "" for c in ET.fromstring(body)}
    crypto = WeComCrypto(V1_TOKEN, V1_KEY, V1_CORP)
    plain = crypto.open(fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"], fields["Encrypt"]).decode()
    reply = {c.tag: c.text or "" for c in ET.fromstring(plain)}
    assert reply["ToUserName"] == "mycreate" and reply["MsgType"] == "text"
    assert "帮助" in reply["Content"]  # "hello" is not a command
    assert await count(db, InboundMessage) == 1
    # Same envelope with another nonce: forged.
    async with client.post("/wecom/app", params=query | {"nonce": "1372623148"}, data=envelope.encode()) as resp:
        assert resp.status == 403


async def test_v3_vector_through_app_routes(make_client: MakeClient, db: Database) -> None:
    client = await make_client(
        wall=1411443780,
        wecom_corp_id=V3_CORP, wecom_app_token=V3_TOKEN, wecom_app_aes_key=V3_KEY, wecom_app_secret=None,
    )
    params = {"msg_signature": "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "timestamp": "1411443780",
              "nonce": "437374425", "echostr": V3_ECHOSTR}
    async with client.get("/wecom/app", params=params) as resp:
        assert (resp.status, await resp.read()) == (200, b"5927782489442352469")
    async with client.get("/wecom/app", params=params | {"nonce": "437374424"}) as resp:
        assert resp.status == 403
    late = await make_client(
        wall=1411525903,
        wecom_corp_id=V3_CORP, wecom_app_token=V3_TOKEN, wecom_app_aes_key=V3_KEY, wecom_app_secret=None,
    )
    envelope = f"<xml><Encrypt><![CDATA[{V3_DECRYPT_ENCRYPT}]]></Encrypt></xml>"
    query = {
        "msg_signature": "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
        "timestamp": "1411525903",
        "nonce": "461056294",
    }
    async with late.post("/wecom/app", params=query, data=envelope.encode()) as resp:
        assert resp.status == 200 and b"<Encrypt>" in await resp.read()
    assert await count(db, InboundMessage) == 1


async def test_url_verification_answers_raw_echostr(client: TestClient, fake: FakeWeCom) -> None:
    async with client.get("/wecom/aibot", params=fake.aibot_verify_params("8237492374923")) as resp:
        assert resp.status == 200 and await resp.read() == b"8237492374923"
    async with client.get("/wecom/app", params=fake.app_verify_params("42")) as resp:
        assert resp.status == 200 and await resp.read() == b"42"
    # The AI bot's echostr does not open with the app's receiveid (CorpID) and vice versa.
    async with client.get("/wecom/app", params=fake.aibot_verify_params("1")) as resp:
        assert resp.status in (400, 403)


# --------------------------------------------------------------------------------- group commands
async def test_claims_in_group_and_duplicate_refused_naming_first(
    client: TestClient, fake: FakeWeCom, db: Database
) -> None:
    first = await say(client, fake, "认领 北京华为技术有限公司", "zhangsan")
    assert "认领成功" in first and "北京华为技术有限公司" in first
    second = await say(client, fake, "认领 华为技术", "lisi")
    assert "撞单" in second and "zhangsan" in second
    assert await count(db, Customer) == 1
    # @bot mention was stripped before routing (otherwise the command would not have matched).
    assert fake.sent_aibot_callbacks[-1]["text"]["content"].startswith("@销售助手 ")


async def test_same_callback_three_times_has_one_effect(client: TestClient, fake: FakeWeCom, db: Database) -> None:
    callback = fake.aibot_text_callback("认领 上海某某科技", "zhangsan", "grpSales")
    results = [await post_aibot(client, callback) for _ in range(3)]
    assert [status for status, _ in results] == [200, 200, 200]
    assert "认领成功" in fake.decrypt_aibot_passive_reply(results[0][1])["stream"]["content"]
    assert results[1][1] == b"" and results[2][1] == b""
    assert await count(db, Customer) == 1
    assert await count(db, InboundMessage) == 1


async def test_concurrent_redelivery_has_one_effect(client: TestClient, fake: FakeWeCom, db: Database) -> None:
    # Two copies wait on the first one's row lock, so all three answer when it commits: one reply inline.
    callback = fake.aibot_text_callback("认领 深圳某某电子", "zhangsan", "grpSales")
    results = await asyncio.gather(*(post_aibot(client, callback) for _ in range(3)))
    assert sorted(bool(body) for _, body in results) == [False, False, True]
    assert await count(db, Customer) == 1


def _sign(fake: FakeWeCom, encrypt: str, ts: str = str(int(WALL)), nonce: str = "12345") -> dict[str, str]:
    return {"msg_signature": fake.aibot_crypto.sign(ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}


async def test_forged_stale_truncated_oversized_change_nothing(
    client: TestClient, fake: FakeWeCom, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="salesbot.wecom")
    query, body = fake.aibot_text_callback("认领 北京华为", "zhangsan", "grpSales")
    encrypt = json.loads(body)["encrypt"]

    forged = {**query, "msg_signature": "0" * 40}
    assert (await post_aibot(client, (forged, body)))[0] == 403

    truncated_cipher = json.dumps({"encrypt": encrypt[:-8]}).encode()
    assert (await post_aibot(client, (query, truncated_cipher)))[0] == 403  # signature covers the ciphertext

    assert (await post_aibot(client, (query, body[: len(body) // 2])))[0] == 400  # truncated JSON

    signed_garbage = encrypt[:-12] + "AAAAAAAAAAA="
    garbage_body = json.dumps({"encrypt": signed_garbage}).encode()
    assert (await post_aibot(client, (_sign(fake, signed_garbage), garbage_body)))[0] == 400

    other = WeComCrypto("T", AIBOT_KEY, "wrong-receiveid").encrypt(json.dumps({"msgid": "x"}))
    assert (await post_aibot(client, (_sign(fake, other), json.dumps({"encrypt": other}).encode())))[0] == 400

    not_json = fake.aibot_crypto.encrypt("<xml>nope</xml>")
    assert (await post_aibot(client, (_sign(fake, not_json), json.dumps({"encrypt": not_json}).encode())))[0] == 400

    stale_ts = str(int(WALL) - 3600)
    assert (await post_aibot(client, (_sign(fake, encrypt, ts=stale_ts), body)))[0] == 403

    big = json.dumps({"encrypt": "A" * (65 * 1024)}).encode()
    assert (await post_aibot(client, (query, big)))[0] == 413

    assert (await post_aibot(client, ({}, body)))[0] == 400

    assert await count(db, InboundMessage) == 0
    assert await count(db, Customer) == 0
    assert await count(db, OutboxMessage) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "salesbot.wecom"]
    assert len(lines) == 9
    for line in lines:
        assert encrypt[:20] not in line and AIBOT_KEY not in line and query["msg_signature"] not in line


async def test_enter_chat_welcome_once(client: TestClient, fake: FakeWeCom) -> None:
    callback = fake.aibot_event_callback("enter_chat", "wangwu")
    status, body = await post_aibot(client, callback)
    reply = fake.decrypt_aibot_passive_reply(body)
    assert status == 200 and reply["msgtype"] == "text" and "帮助" in reply["text"]["content"]
    assert await post_aibot(client, callback) == (200, b"")


async def test_non_text_message_gets_a_hint(client: TestClient, fake: FakeWeCom) -> None:
    payload = {"msgid": "img1", "aibotid": fake.aibot_id, "chattype": "single", "from": {"userid": "u1"},
               "msgtype": "image", "image": {"url": "https://example.invalid/x"}}
    status, body = await post_aibot(client, fake.aibot_callback(payload))
    assert "文字" in fake.decrypt_aibot_passive_reply(body)["stream"]["content"]


# --------------------------------------------------------------------------------- late replies
async def test_slow_command_replies_through_response_url(
    make_client: MakeClient, fake: FakeWeCom, db: Database
) -> None:
    client = await make_client(reply_budget_ms=0)
    status, body = await post_aibot(client, fake.aibot_text_callback("认领 杭州某某网络", "zhangsan", "grpSales"))
    assert (status, body) == (200, b"")
    url = fake.sent_aibot_callbacks[-1]["response_url"]
    ad = adapter(client)
    await asyncio.gather(*list(ad._tasks))
    rows = await outbox_rows(db)
    assert len(rows) == 1
    row = rows[0]
    assert row.platform == "wecom" and row.destination == {
        "kind": "response_url", "url": url, "corp_id": "wwcorp",
        # Once the URL is spent or expired: the group's team push, then the asker (issue 12, defect 5).
        "fallback": [{"kind": "team", "team_id": row.team_id, "corp_id": "wwcorp"},
                     {"kind": "member", "user_ids": ["zhangsan"], "corp_id": "wwcorp"}],
    }
    assert row.dest_key.startswith("wecom:response_url:") and "认领成功" in row.body["text"]
    assert await count(db, Customer) == 1  # committed together with the outbox row

    await ad.deliverer.deliver(row.destination, OutgoingMessage.from_json(row.body))
    [posted] = fake.response_url_messages(url)
    assert posted["msgtype"] == "markdown" and "认领成功" in posted["markdown"]["content"]
    # One-shot: a second post is refused by WeCom, and the reply goes through the fallback instead — the group
    # has no robot webhook here, so to the asker through the app.
    await ad.deliverer.deliver(row.destination, OutgoingMessage.from_json(row.body))
    assert len(fake.response_url_messages(url)) == 1 and "认领成功" in fake.delivered_to("zhangsan")[0]["markdown"][
        "content"]


# --------------------------------------------------------------------------------- self-built app
async def test_app_one_to_one_acts_in_the_members_team(client: TestClient, fake: FakeWeCom, db: Database) -> None:
    await say(client, fake, "认领 北京华为技术有限公司", "zhangsan")
    callback = fake.app_text_callback("我的", "zhangsan")
    status, body = await post_app(client, callback)
    assert status == 200
    fields = fake.app_passive_reply_fields(body)
    assert fields["ToUserName"] == "zhangsan" and "北京华为技术有限公司" in fields["Content"]
    assert await post_app(client, callback) == (200, b"")  # WeCom's retry: no second effect
    # Events are deduplicated on FromUserName + CreateTime and answered with 200 empty.
    event = fake.app_event_callback("enter_agent", "zhangsan")
    assert await post_app(client, event) == (200, b"")
    assert await post_app(client, event) == (200, b"")
    assert await count(db, InboundMessage) == 3


async def test_app_rejects_bad_xml_and_signature(client: TestClient, fake: FakeWeCom, db: Database) -> None:
    query, body = fake.app_text_callback("我的", "zhangsan")
    assert (await post_app(client, (query, b"<xml><Encrypt>")))[0] == 400
    entity = b'<!DOCTYPE x [<!ENTITY a "b">]><xml><Encrypt>&a;</Encrypt></xml>'
    assert (await post_app(client, (query, entity)))[0] == 400
    assert (await post_app(client, ({**query, "msg_signature": "f" * 40}, body)))[0] == 403
    assert (await post_app(client, (query, b"<xml>" + b"x" * 70000 + b"</xml>")))[0] == 413
    assert await count(db, InboundMessage) == 0


async def test_help_request_from_app_goes_to_team_webhook(
    client: TestClient, fake: FakeWeCom, db: Database
) -> None:
    key = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
    reply = await say(client, fake, f"设置 推送 {fake.webhook_url(key)}", "boss")
    assert "✅" in reply and key not in reply and key[:4] in reply
    await say(client, fake, "帮助", "zhangsan")  # zhangsan is in the group's team
    status, body = await post_app(client, fake.app_text_callback("求助 谁熟悉华为的采购流程", "zhangsan"))
    assert status == 200
    rows = await outbox_rows(db)
    assert [r.destination for r in rows] == [{"kind": "webhook", "key": key}]
    assert rows[0].dest_key.startswith("wecom:webhook:") and key not in rows[0].dest_key
    assert "求助 #1" in rows[0].body["text"]
    # Only admins may set it, and a non-webhook URL is refused.
    assert "管理员" in await say(client, fake, f"设置 推送 {fake.webhook_url('k' * 20)}", "lisi")
    assert "Webhook" in await say(client, fake, "设置 推送 https://example.com/x?key=abcdefgh", "boss")
