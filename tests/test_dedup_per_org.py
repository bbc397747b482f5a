"""A message id is unique within one organisation only: two corps (WeCom) or orgs (DingTalk) served by one
process may send the same one, and each message has its effect, once; a true re-delivery within one
organisation still has one effect. Through the real HTTP routes, with one fake platform per organisation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from storage.database import Database
from storage.models import Customer, InboundMessage, Organisation, OutboxMessage
from tests.db_helpers import count
from tests.dingtalk_support import RunningBot, dingtalk_settings, running_bot, text_of
from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.wecom import FakeWeCom
from tests.test_wecom_multicorp import client, fakes, post, two_corp_settings  # noqa: F401  (fixtures)

SAME = "msg-same-in-both-corps"


async def customers_by_org(db: Database) -> list[tuple[str, str]]:
    async with db.session() as session:
        rows = await session.execute(
            select(Organisation.corp_key, Customer.name).join(Organisation, Organisation.id == Customer.org_id)
        )
        return sorted((corp, name) for corp, name in rows.all())


# --------------------------------------------------------------------------------- WeCom AI bot
async def test_same_aibot_msgid_from_two_corps_has_both_effects(
    client: TestClient, fakes: tuple[FakeWeCom, FakeWeCom], db: Database  # noqa: F811
) -> None:
    a, b = fakes
    in_a = a.aibot_text_callback("认领 华为", "zhangsan", "grpSales", msgid=SAME)
    in_b = b.aibot_text_callback("认领 小米", "zhangsan", "grpSales", msgid=SAME)
    status_a, body_a = await post(client, "/wecom/aibot", in_a)
    status_b, body_b = await post(client, "/wecom/aibot/wwB", in_b)
    assert (status_a, status_b) == (200, 200)
    assert "认领成功" in a.decrypt_aibot_passive_reply(body_a)["stream"]["content"]
    assert "认领成功" in b.decrypt_aibot_passive_reply(body_b)["stream"]["content"]
    # WeCom re-delivers corp A's callback: no second effect, no second answer.
    assert await post(client, "/wecom/aibot", in_a) == (200, b"")
    assert await customers_by_org(db) == [("wwA", "华为"), ("wwB", "小米")]
    assert await count(db, InboundMessage) == 2


async def test_same_event_msgid_from_two_corps_is_welcomed_in_both(
    client: TestClient, fakes: tuple[FakeWeCom, FakeWeCom], db: Database  # noqa: F811
) -> None:
    a, b = fakes
    in_a = a.aibot_event_callback("enter_chat", "zhangsan", msgid=SAME)
    in_b = b.aibot_event_callback("enter_chat", "zhangsan", msgid=SAME)
    _, body_a = await post(client, "/wecom/aibot", in_a)
    _, body_b = await post(client, "/wecom/aibot/wwB", in_b)
    assert a.decrypt_aibot_passive_reply(body_a)["msgtype"] == "text"
    assert b.decrypt_aibot_passive_reply(body_b)["msgtype"] == "text"
    assert await post(client, "/wecom/aibot/wwB", in_b) == (200, b"")
    assert await count(db, InboundMessage) == 2


async def test_late_replies_to_the_same_msgid_in_two_corps_both_go_out(
    db: Database, fakes: tuple[FakeWeCom, FakeWeCom]  # noqa: F811
) -> None:
    from aiohttp.test_utils import TestServer

    from bot.adapters.wecom import WECOM_KEY, wecom_component
    from bot.app import build_app
    from tests.wecom_support import WALL

    a, b = fakes
    # reply_budget_ms=0: both commands miss the passive-reply window, so both replies are queued for
    # their corp's response_url — under keys that must not collide.
    app = build_app(two_corp_settings(a, b, reply_budget_ms=0),
                    components=[lambda app: wecom_component(app, wall_clock=lambda: WALL)], database=db)
    async with TestClient(TestServer(app)) as late_client:
        await post(late_client, "/wecom/aibot", a.aibot_text_callback("认领 华为", "zhangsan", "grp", msgid=SAME))
        await post(late_client, "/wecom/aibot/wwB", b.aibot_text_callback("认领 小米", "zhangsan", "grp", msgid=SAME))
        await asyncio.gather(*late_client.server.app[WECOM_KEY]._tasks)
    async with db.session() as session:
        rows = list((await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())
    # The two late commands run concurrently: either may commit first.
    by_corp = {r.destination.get("corp_id"): r for r in rows}
    assert sorted((r.destination["kind"], corp) for corp, r in by_corp.items()) == [
        ("response_url", "wwA"), ("response_url", "wwB")
    ]
    assert len(rows) == 2
    assert "华为" in by_corp["wwA"].body["text"] and "小米" in by_corp["wwB"].body["text"]


# --------------------------------------------------------------------------------- WeCom app
async def test_same_app_msgid_from_two_corps_has_both_effects(
    client: TestClient, fakes: tuple[FakeWeCom, FakeWeCom], db: Database  # noqa: F811
) -> None:
    a, b = fakes
    in_a = a.app_text_callback("帮助", "zhangsan", msg_id=7_000_000_000_000_000_001)
    in_b = b.app_text_callback("帮助", "zhangsan", msg_id=7_000_000_000_000_000_001)
    status_a, body_a = await post(client, "/wecom/app", in_a)
    status_b, body_b = await post(client, "/wecom/app/wwB", in_b)
    assert (status_a, status_b) == (200, 200)
    assert "<MsgType><![CDATA[text]]></MsgType>" in a.decrypt_app_passive_reply(body_a)
    assert "<MsgType><![CDATA[text]]></MsgType>" in b.decrypt_app_passive_reply(body_b)
    assert await post(client, "/wecom/app", in_a) == (200, b"")
    assert await count(db, InboundMessage) == 2


async def test_same_app_event_from_two_corps_is_recorded_for_each(
    client: TestClient, fakes: tuple[FakeWeCom, FakeWeCom], db: Database  # noqa: F811
) -> None:
    a, b = fakes
    # Events carry no MsgId: the key is FromUserName + CreateTime, the same in both corps here.
    for path, fake in (("/wecom/app", a), ("/wecom/app/wwB", b), ("/wecom/app", a)):
        assert (await post(client, path, fake.app_event_callback("enter_agent", "zhangsan")))[0] == 200
    async with db.session() as session:
        keys = (await session.execute(select(InboundMessage.org_key, InboundMessage.msg_id))).all()
    assert sorted(org for org, _ in keys) == ["wwA", "wwB"]
    assert len({msg_id for _, msg_id in keys}) == 1


# --------------------------------------------------------------------------------- DingTalk
@pytest.fixture
async def ding() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk() as fake:
        yield fake


@pytest.fixture
async def ding_bot(ding: FakeDingTalk, db: Database) -> AsyncIterator[RunningBot]:
    async with running_bot(dingtalk_settings(ding), db) as running:
        yield running


def robot_callback(ding: FakeDingTalk, text: str, corp: str, conversation: str) -> tuple[dict[str, str], bytes]:
    """A signed robot callback from organisation `corp` (the robot of a third-party app serves several)."""
    payload: dict[str, Any] = ding.robot_message(text, "zhangsan", "张三", conversation, msg_id=SAME)
    payload["senderCorpId"] = payload["chatbotCorpId"] = corp
    return ding.sign_robot_callback(payload)


async def test_same_dingtalk_msgid_from_two_orgs_has_both_effects(
    ding_bot: RunningBot, ding: FakeDingTalk, db: Database
) -> None:
    in_a = robot_callback(ding, "认领 华为", "dingcorpA", "cidA")
    in_b = robot_callback(ding, "认领 小米", "dingcorpB", "cidB")
    # Concurrently, so that they (and org A's re-delivery) share one group INSERT.
    results = await asyncio.gather(ding_bot.post_robot(*in_a), ding_bot.post_robot(*in_b), ding_bot.post_robot(*in_a))
    assert [status for status, _ in results] == [200, 200, 200]
    await ding_bot.drain()
    assert await post_robot_ok(ding_bot, in_a)  # and once more, later: still one effect
    await ding_bot.drain()
    assert await customers_by_org(db) == [("dingcorpA", "华为"), ("dingcorpB", "小米")]
    replies = sorted(text_of(r) for r in ding.session_messages())
    assert len(replies) == 2 and all("认领成功" in r for r in replies)
    async with db.session() as session:
        rows = (await session.execute(select(InboundMessage.org_key, InboundMessage.status))).all()
    assert sorted(rows) == [("dingcorpA", "done"), ("dingcorpB", "done")]


async def post_robot_ok(bot: RunningBot, callback: tuple[dict[str, str], bytes]) -> bool:
    status, body = await bot.post_robot(*callback)
    return status == 200 and json.loads(body) == {}
