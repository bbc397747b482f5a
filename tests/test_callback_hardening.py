"""What an attack run sent to the callback routes, through real HTTP: malformed values that no signature
covers yet (a 4xx and one log line, never a 500 or a traceback), fields of the wrong type or size (400
before anything is written), replayed DingTalk signatures, stale event timestamps, and slow or vanishing
clients (header and body read timeouts, one line for a dropped body)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from bot.adapters.wecom import wecom_component
from bot.app import build_app, make_runner
from bot.settings import Settings
from storage.database import Database
from storage.inbound import SIGN_FRESH_S
from storage.models import Customer, InboundMessage, Member
from tests.dingtalk_support import DINGTALK_KEY, RunningBot, count, dingtalk_settings, running_bot
from tests.fakes.dingtalk import FakeDingTalk, dingtalk_sign
from tests.fakes.wecom import FakeWeCom
from tests.wecom_support import WALL, wecom_settings


@pytest.fixture
async def ding() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk() as fake_ding:
        yield fake_ding


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the bot and aiohttp's server logged at INFO or above."""
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records
            if r.levelno >= logging.INFO and r.name.startswith(("salesbot", "aiohttp"))]


async def _raw(port: int, request: bytes, *, read: bool = True) -> bytes:
    """`request` as raw bytes (header values aiohttp's client would refuse to send); the answer's status line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 5) if read else b""
    finally:
        writer.close()


def _robot_request(headers: dict[str, bytes], body: bytes, path: bytes = b"/dingtalk/robot") -> bytes:
    head = b"".join(k.encode() + b": " + v + b"\r\n" for k, v in headers.items())
    return (b"POST " + path + b" HTTP/1.1\r\nHost: bot\r\nConnection: close\r\nContent-Type: application/json\r\n"
            + head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


# ---------------------------------------------------------------------------------------------- DingTalk
async def test_malformed_robot_headers_are_a_4xx_and_one_line(ding: FakeDingTalk, db: Database,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    headers, body = ding.robot_text_callback("我的", "zhangsan", "张三")
    good = {"timestamp": headers["timestamp"].encode(), "sign": headers["sign"].encode()}
    cases = [
        {**good, "timestamp": b"1" * 5000},  # int() digit limit
        {**good, "timestamp": "²".encode()},  # isdigit() but not int()
        {**good, "sign": "签名".encode() + b"\xff\xfe"},  # non-ASCII, undecodable bytes
    ]
    async with running_bot(dingtalk_settings(ding), db) as bot:
        port = bot.server.port
        assert port is not None
        for case in cases:
            caplog.clear()
            status = await _raw(port, _robot_request(case, body))
            assert status.split()[1] in (b"400", b"401", b"403"), status
            assert len(_lines(caplog)) == 1 and "rejected" in _lines(caplog)[0], _lines(caplog)
    assert await count(db, InboundMessage) == 0


def _signed(ding: FakeDingTalk, body: bytes) -> dict[str, str]:
    ts = int(ding._wall_clock() * 1000)
    return {"timestamp": str(ts), "sign": dingtalk_sign(ding.app_secret, ts), "Content-Type": "application/json"}


async def test_bad_bodies_and_fields_are_refused_before_anything_is_written(
        ding: FakeDingTalk, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    base = ding.robot_message("认领 小米科技", "zhangsan", "张三")
    nested = b"[" * 30_000 + b"]" * 30_000
    bad_payloads: list[dict[str, Any]] = [
        {**base, "senderStaffId": {"a": 1}},
        {**base, "msgId": "m" * 300},
        {**base, "conversationId": "c" * 200},
        {**base, "senderNick": ["张三"]},
        {**base, "conversationTitle": 42},
        {**base, "senderCorpId": "x" * 129},
        {**base, "text": "认领 小米科技"},
        {**base, "atUsers": 5},
    ]
    bodies = [nested] + [json.dumps(p).encode() for p in bad_payloads]
    async with running_bot(dingtalk_settings(ding), db) as bot:
        for body in bodies:
            caplog.clear()
            status, _ = await bot.post_robot(_signed(ding, body), body)
            assert status == 400, body[:80]
            assert len(_lines(caplog)) == 1, _lines(caplog)
        # A malformed sessionWebhookExpiredTime only means the sessionWebhook is not used (it was a 500).
        ok = {**base, "msgId": "m-ok", "sessionWebhookExpiredTime": "²"}
        status, _ = await bot.post_robot(_signed(ding, json.dumps(ok).encode()), json.dumps(ok).encode())
        assert status == 200
        await bot.settle()
    assert await count(db, InboundMessage) == 1
    async with db.session() as session:
        assert (await session.execute(select(Member.user_id))).scalars().all() == ["zhangsan"]


def _later(bot: RunningBot, seconds: float) -> None:
    """The bot's acknowledgements from now on are recorded `seconds` later than they happen."""
    inbound = bot.app[DINGTALK_KEY]
    inbound.clock = lambda: datetime.now(UTC) + timedelta(seconds=seconds)


async def test_a_captured_signature_replayed_later_with_a_forged_body_has_no_effect_on_any_replica(
        ding: FakeDingTalk, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    headers, body = ding.robot_text_callback("我的", "zhangsan", "张三", msg_id="m-real")
    forged = [json.dumps(ding.robot_message("认领 华为技术", "lisi", "李四", msg_id=f"m-forged-{n}")).encode()
              for n in (1, 2)]
    async with running_bot(dingtalk_settings(ding), db) as one, running_bot(dingtalk_settings(ding), db) as two:
        assert (await one.post_robot(headers, body))[0] == 200
        await one.settle()
        for replica, forged_body in zip((one, two), forged, strict=True):
            _later(replica, SIGN_FRESH_S + 1)  # the captured pair comes back after its freshness
            assert (await replica.post_robot(headers, forged_body))[0] == 200
            assert (await replica.post_robot(headers, body))[0] == 200  # DingTalk's re-delivery: a duplicate
            await replica.settle()
    async with db.session() as session:
        rows = (await session.execute(select(InboundMessage.msg_id, InboundMessage.status)
                                      .order_by(InboundMessage.id))).all()
        members = (await session.execute(select(Member.user_id))).scalars().all()
    assert [tuple(r) for r in rows] == [("m-real", "done"), ("m-forged-1", "replayed"), ("m-forged-2", "replayed")]
    assert members == ["zhangsan"]  # the forged sender never became a member, nothing was claimed
    assert await count(db, Customer) == 0
    assert sum("replayed signature refused" in r.getMessage() for r in caplog.records) == 2


async def test_a_replay_inside_a_burst_is_refused_and_the_rest_run(ding: FakeDingTalk, db: Database) -> None:
    headers, body = ding.robot_text_callback("认领 小米科技", "zhangsan", "张三", msg_id="m-real")
    forged = json.dumps(ding.robot_message("认领 华为技术", "lisi", "李四", msg_id="m-forged")).encode()
    later = ding.robot_text_callback("认领 京东", "wangwu", "王五", msg_id="m-later")
    async with running_bot(dingtalk_settings(ding), db, {"workers": 0, "recover_every": None}) as bot:
        assert (await bot.post_robot(headers, body))[0] == 200
        _later(bot, SIGN_FRESH_S + 1)
        assert (await bot.post_robot(headers, forged))[0] == 200
        assert (await bot.post_robot(*later))[0] == 200
        inbound = bot.app[DINGTALK_KEY]
        inbound.start(workers=1, recover_every=None)
        await bot.settle()
        assert inbound.batch_sizes == {3: 1}
    async with db.session() as session:
        rows = dict((await session.execute(select(InboundMessage.msg_id, InboundMessage.status))).all())
        names = set((await session.execute(select(Customer.name))).scalars())
    assert rows == {"m-real": "done", "m-forged": "replayed", "m-later": "done"}
    assert names == {"小米科技", "京东"}


async def test_messages_signed_in_the_same_millisecond_all_run(ding: FakeDingTalk, db: Database) -> None:
    """DingTalk's sign depends on the timestamp only: concurrent genuine messages share a pair."""
    ts = int(ding._wall_clock() * 1000)
    callbacks = [ding.sign_robot_callback(ding.robot_message(f"认领 客户{n}有限公司 确认", f"rep{n}", f"销售{n}",
                                                             conversation_id=f"cid-{n}"), timestamp=ts)
                 for n in range(6)]
    assert len({headers["sign"] for headers, _ in callbacks}) == 1
    async with running_bot(dingtalk_settings(ding), db) as bot:
        statuses = await asyncio.gather(*(bot.post_robot(headers, body) for headers, body in callbacks[:5]))
        _later(bot, SIGN_FRESH_S - 1)  # within the pair's freshness: still genuine
        statuses.append(await bot.post_robot(*callbacks[5]))
        await bot.settle()
    assert [status for status, _ in statuses] == [200] * 6
    assert await count(db, Customer) == 6


async def test_seen_signatures_go_with_the_daily_housekeeping(ding: FakeDingTalk, db: Database) -> None:
    async with running_bot(dingtalk_settings(ding), db) as bot:
        assert (await bot.post_robot(*ding.robot_text_callback("我的", "zhangsan", "张三")))[0] == 200
        await bot.settle()
    now = datetime.now(UTC)
    assert (await db.prune_bookkeeping(now + timedelta(days=10), keep_days=30))["inbound_messages"] == 0
    async with db.session() as session:
        assert (await session.execute(select(InboundMessage.sign))).scalars().all() != [None]
    await db.prune_bookkeeping(now + timedelta(days=31), keep_days=30)
    assert await count(db, InboundMessage) == 0


async def test_the_window_is_a_setting(ding: FakeDingTalk, db: Database) -> None:
    settings = dingtalk_settings(ding, dingtalk_sign_window_s=60)
    async with running_bot(settings, db) as bot:
        payload = ding.robot_message("我的", "zhangsan", "张三")
        ts = int(ding._wall_clock() * 1000) - 120_000
        assert (await bot.post_robot(*ding.sign_robot_callback(payload, timestamp=ts)))[0] == 403


async def _post_event(bot: RunningBot, query: dict[str, str], body: bytes) -> int:
    async with bot.http.post(bot.url("/dingtalk/events"), params=query, data=body) as resp:
        return resp.status


async def test_events_have_the_window_and_refuse_malformed_query_values(
        ding: FakeDingTalk, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    event = {"EventType": "user_leave_org", "UserId": ["zhangsan"]}
    async with running_bot(dingtalk_settings(ding), db) as bot:
        for ts in (946_684_800_000, int(ding._wall_clock() * 1000) + 10 * 365 * 86_400_000):  # 2000-01-01, +10 y
            assert await _post_event(bot, *ding.event_callback(event, timestamp=ts)) == 403
        query, body = ding.event_callback(event)
        for bad in ({**query, "signature": "签名é"}, {**query, "timestamp": "1" * 5000},
                    {**query, "timestamp": "²"}):
            bad.pop("msg_signature", None)
            caplog.clear()
            assert await _post_event(bot, bad, body) in (400, 401, 403)
            assert len(_lines(caplog)) == 1, _lines(caplog)
        assert await _post_event(bot, query, body) == 200
    assert await count(db, InboundMessage) == 1


# ---------------------------------------------------------------------------------------------- WeCom
@asynccontextmanager
async def served(settings: Settings, db: Database) -> AsyncIterator[int]:
    """The app on a port of its own, built as `salesbot serve` builds it (make_runner, no test cancellation)."""
    app = build_app(settings, components=[lambda a: wecom_component(a, wall_clock=lambda: WALL)], database=db)
    runner = make_runner(app, settings, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def _aibot(port: int, callback: tuple[dict[str, str], bytes]) -> int:
    async with aiohttp.ClientSession() as http, http.post(f"http://127.0.0.1:{port}/wecom/aibot",
                                                          params=callback[0], data=callback[1]) as resp:
        return resp.status


async def test_wecom_refuses_malformed_values_and_payloads_with_one_line(
        fake: FakeWeCom, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    good = fake.aibot_text_callback("我的", "zhangsan", "grpSales")
    query, body = good
    payload = fake.sent_aibot_callbacks[-1]
    async with served(wecom_settings(fake), db) as port:
        cases = [
            ({**query, "msg_signature": "签名é"}, body),
            ({**query, "timestamp": "1" * 5000}, body),
            ({**query, "timestamp": "²"}, body),
            _nested_aibot(fake),
            fake.aibot_callback({**payload, "msgid": "m2", "from": "zhangsan"}),
            fake.aibot_callback({**payload, "msgid": "m3", "from": {"userid": {"a": 1}}}),
            fake.aibot_callback({**payload, "msgid": "x" * 300}),
            fake.aibot_callback({**payload, "msgid": "m4", "chatid": "c" * 300}),
            fake.aibot_callback({**payload, "msgid": "m5", "text": "我的"}),
            fake.aibot_callback({"msgid": "m6", "msgtype": "event", "event": "enter_chat", "from": {"userid": "u"}}),
        ]
        for case in cases:
            caplog.clear()
            status = await _aibot(port, case)
            assert 400 <= status < 500, (status, case)
            assert len(_lines(caplog)) == 1, _lines(caplog)
        assert await _aibot(port, good) == 200
    assert await count(db, InboundMessage) == 1


def _nested_aibot(fake: FakeWeCom) -> tuple[dict[str, str], bytes]:
    """A correctly signed and encrypted AI-bot callback whose plaintext is JSON nested 30,000 deep."""
    ts, nonce = fake._stamp()
    encrypt = fake.aibot_crypto.encrypt("[" * 30_000 + "]" * 30_000)
    return {"msg_signature": fake.aibot_crypto.sign(ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}, \
        json.dumps({"encrypt": encrypt}).encode()


async def test_wecom_app_fields_of_the_wrong_type_or_size_are_refused(
        fake: FakeWeCom, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    def app_xml(user: str, content: str, msg_id: str = "1234567890123456789") -> str:
        return (f"<xml><ToUserName>wwcorp</ToUserName><FromUserName>{user}</FromUserName>"
                f"<CreateTime>{int(WALL)}</CreateTime><MsgType>text</MsgType><Content>{content}</Content>"
                f"<MsgId>{msg_id}</MsgId><AgentID>1000002</AgentID></xml>")

    async with served(wecom_settings(fake), db) as port, aiohttp.ClientSession() as http:
        for plain in (app_xml("u" * 200, "我的"), app_xml("zhangsan", "<a>1</a><b>2</b>"),
                      app_xml("zhangsan", "我的", "9" * 300)):
            query, body = fake.app_callback(plain)
            caplog.clear()
            async with http.post(f"http://127.0.0.1:{port}/wecom/app", params=query, data=body) as resp:
                assert resp.status == 400, plain
            assert len(_lines(caplog)) == 1, _lines(caplog)
    assert await count(db, InboundMessage) == 0


async def test_a_client_dropping_mid_body_is_one_line(fake: FakeWeCom, db: Database,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    async with served(wecom_settings(fake), db) as port:
        for path in (b"/wecom/aibot", b"/wecom/app"):
            caplog.clear()
            head = (b"POST " + path + b"?msg_signature=a&timestamp=1&nonce=n HTTP/1.1\r\nHost: bot\r\n"
                    b"Content-Length: 5000\r\n\r\n{\"encrypt\": \"")
            await _raw(port, head, read=False)
            await asyncio.sleep(0.3)
            assert len(_lines(caplog)) == 1 and "body incomplete" in _lines(caplog)[0], _lines(caplog)


async def test_slow_clients_are_cut_off_and_normal_requests_still_succeed(
        fake: FakeWeCom, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    settings = wecom_settings(fake, header_timeout_s=1, body_timeout_s=1)
    async with served(settings, db) as port:
        drippers = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]

        async def drip(writer: asyncio.StreamWriter) -> None:
            writer.write(b"POST /wecom/aibot HTTP/1.1\r\n")
            for _ in range(30):
                await asyncio.sleep(0.2)
                writer.write(b"X-Slow: a\r\n")

        tasks = [asyncio.ensure_future(drip(w)) for _, w in drippers]
        assert await _aibot(port, fake.aibot_text_callback("我的", "zhangsan", "grpSales")) == 200
        closed = await asyncio.wait_for(asyncio.gather(*(r.read() for r, _ in drippers)), 3.0)  # EOF: closed
        assert all(data == b"" for data in closed)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

        # A body dripping past body_timeout_s is a 408 and one line.
        caplog.clear()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /wecom/aibot?msg_signature=a&timestamp=1&nonce=n HTTP/1.1\r\nHost: bot\r\n"
                     b"Content-Length: 100\r\n\r\n{")
        for _ in range(8):
            await asyncio.sleep(0.2)
            writer.write(b" ")
        status = await asyncio.wait_for(reader.readline(), 3.0)
        writer.close()
        assert status.split()[1] == b"408"
        assert len(_lines(caplog)) == 1, _lines(caplog)
    for _, w in drippers:
        w.close()

