"""AI-bot long-connection mode against the fake WebSocket server: subscribe, answer, ping, reconnect, push."""

from __future__ import annotations

from datetime import UTC

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.adapters import wecom_ws
from bot.delivery import OutgoingMessage
from storage.database import Database
from tests.fakes.wecom import FakeWeCom
from tests.wecom_support import (
    Customer,
    MakeClient,
    adapter,
    count,
    wecom_settings,
)


@pytest.fixture
async def ws_client(make_client: MakeClient, fake: FakeWeCom, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setattr(wecom_ws, "BACKOFF_INITIAL", 0.05)
    monkeypatch.setattr(wecom_ws, "HEARTBEAT", 0.2)
    settings = wecom_settings(
        fake,
        wecom_aibot_token=None,
        wecom_aibot_aes_key=None,
        wecom_aibot_mode="websocket",
        wecom_aibot_bot_id=fake.aibot_id,
        wecom_aibot_secret=fake.aibot_secret,
        wecom_aibot_ws_url=fake.ws_url,
    )
    client = await make_client(settings=settings)
    await fake.wait_for(lambda: fake.ws_connected)
    return client


async def test_commands_over_the_long_connection(ws_client: TestClient, fake: FakeWeCom, db: Database) -> None:
    req = await fake.ws_push_text("认领 北京华为技术有限公司", "zhangsan", "grpSales")
    [reply] = await fake.wait_for(lambda: fake.ws_replies(req))
    stream = reply["body"]["stream"]
    assert reply["body"]["msgtype"] == "stream" and stream["finish"] is True and "认领成功" in stream["content"]

    dup = await fake.ws_push_text("认领 华为技术", "lisi", "grpSales")
    [refused] = await fake.wait_for(lambda: fake.ws_replies(dup))
    assert "撞单" in refused["body"]["stream"]["content"] and "zhangsan" in refused["body"]["stream"]["content"]
    assert await count(db, Customer) == 1

    welcome = await fake.ws_push_event("enter_chat", "wangwu")
    frames = await fake.wait_for(
        lambda: [f for f in fake.ws_frames("aibot_respond_welcome_msg") if f["headers"]["req_id"] == welcome]
    )
    assert "帮助" in frames[0]["body"]["text"]["content"]
    # Heartbeat keeps the connection alive.
    await fake.wait_for(lambda: fake.ws_frames("ping"))


async def test_reconnects_after_a_drop_and_pushes_to_groups(ws_client: TestClient, fake: FakeWeCom) -> None:
    await fake.ws_drop()
    await fake.wait_for(lambda: fake.ws_connected and fake.ws_subscriptions == 2)
    ad = adapter(ws_client)
    await fake.wait_for(lambda: ad.ws.connected)
    await ad.deliverer.deliver({"kind": "ws_chat", "chatid": "grpSales"}, OutgoingMessage("站会时间到 <@u1>"))
    assert fake.ws_sent_messages("grpSales") == [
        {"chatid": "grpSales", "msgtype": "markdown", "markdown": {"content": "站会时间到 <@u1>"}}
    ]
    req = await fake.ws_push_text("帮助", "zhangsan", "grpSales")
    await fake.wait_for(lambda: fake.ws_replies(req))


async def test_a_scheduled_push_reaches_a_group_without_a_webhook_over_the_connection(
    ws_client: TestClient, fake: FakeWeCom, db: Database
) -> None:
    """Long-connection mode needs no group robot webhook for stand-up prompts: `aibot_send_msg` to the group."""
    from datetime import datetime

    from bot.outbox import OutboxWorker
    from schedules.firing import fire
    from storage.models import OutboxMessage, Team

    req = await fake.ws_push_text("认领 北京华为技术有限公司", "zhangsan", "grpSales")
    await fake.wait_for(lambda: fake.ws_replies(req))
    async with db.session() as session:
        team = (await session.execute(select(Team).where(Team.chat_id == "grpSales"))).scalar_one()
    result = await fire(db, team.id, "standup", datetime.now(UTC), force=True)
    assert result.pushes
    ad = adapter(ws_client)
    await OutboxWorker(db, {"wecom": ad.deliverer}).run_once()
    [sent] = fake.ws_sent_messages("grpSales")
    assert sent["msgtype"] == "markdown" and "晨会" in sent["markdown"]["content"]
    async with db.session() as session:
        statuses = (await session.execute(select(OutboxMessage.status))).scalars().all()
    assert "sent" in statuses and "failed" not in statuses


async def test_each_corp_listed_in_the_file_gets_its_own_long_connection(
    make_client: MakeClient, fake: FakeWeCom, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two corps without public URLs: each bot subscribes on its own connection, its reps' commands land in
    its own organisation, and its groups' pushes go back over its own connection."""
    from datetime import datetime

    from bot.outbox import OutboxWorker
    from bot.settings import WeComCorp
    from schedules.firing import fire
    from storage.models import Organisation, Team

    monkeypatch.setattr(wecom_ws, "BACKOFF_INITIAL", 0.05)
    async with FakeWeCom(corp_id="wwother", aibot_id="aibOther", aibot_secret="other-secret") as other:
        settings = wecom_settings(
            fake, wecom_aibot_token=None, wecom_aibot_aes_key=None, wecom_aibot_mode="websocket",
            wecom_aibot_bot_id=fake.aibot_id, wecom_aibot_secret=fake.aibot_secret, wecom_aibot_ws_url=fake.ws_url,
            wecom_corps=(WeComCorp(corp_id="wwother", aibot_mode="websocket", aibot_bot_id=other.aibot_id,
                                   aibot_secret=other.aibot_secret, aibot_ws_url=other.ws_url),),
        )
        client = await make_client(settings=settings)
        await fake.wait_for(lambda: fake.ws_connected)
        await other.wait_for(lambda: other.ws_connected)

        mine = await fake.ws_push_text("认领 北京华为技术有限公司", "zhangsan", "grpSales")
        theirs = await other.ws_push_text("认领 北京华为技术有限公司", "zhangsan", "grpOther")
        [a] = await fake.wait_for(lambda: fake.ws_replies(mine))
        [b] = await other.wait_for(lambda: other.ws_replies(theirs))
        # Same customer, same user id — two corps, two organisations: no 撞单 between them.
        assert "认领成功" in a["body"]["stream"]["content"] and "认领成功" in b["body"]["stream"]["content"]
        async with db.session() as session:
            orgs = {o.corp_key for o in (await session.execute(select(Organisation))).scalars()}
            team = (await session.execute(select(Team).where(Team.chat_id == "grpOther"))).scalar_one()
        assert orgs == {"wwcorp", "wwother"}

        await fire(db, team.id, "standup", datetime.now(UTC), force=True)
        await OutboxWorker(db, {"wecom": adapter(client).deliverer}).run_once()
        [pushed] = other.ws_sent_messages("grpOther")
        assert "晨会" in pushed["markdown"]["content"] and fake.ws_sent_messages() == []
