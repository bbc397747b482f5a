"""Issues #3/#4: a permanently broken group push is marked durably, admins are told once, later messages
fail fast without a platform call, and setting a new webhook/robot lets pushes flow again.

Driven through the fake platforms, the real deliverers and the real `OutboxWorker.run_once`.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import aiohttp
from sqlalchemy import select

from bot.adapters.dingtalk_send import DingTalkDeliverer
from bot.adapters.dingtalk_send import dest_key as ding_dest_key
from bot.adapters.wecom_send import WeComDeliverer
from bot.adapters.wecom_send import dest_key as wecom_dest_key
from bot.assembly import all_settings
from bot.delivery import OutgoingMessage
from bot.messages import IncomingMessage
from bot.outbox import OutboxWorker, enqueue_message
from bot.router import Router
from handlers import all_commands
from storage.database import Database
from storage.models import AuditLog, OutboxMessage
from tests.dingtalk_support import dingtalk_settings
from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.wecom import WEBHOOK_PATH, FakeWeCom

KEY = "oldkey-0123456789abcdef"
NEW_KEY = "newkey-0123456789abcdef"
NOW = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
_ids = itertools.count(1)


async def say(router: Router, platform: str, org: str, chat: str, text: str, user: str, name: str) -> str:
    replies = await router.handle(
        IncomingMessage(platform=platform, org_key=org, chat_id=chat, user_id=user, text=text,
                        msg_id=f"m{next(_ids)}", user_name=name, chat_title="销售一组"),
        NOW,
    )
    return "\n".join(r.text for r in replies)


def make_router(db: Database, *admins: str) -> Router:
    db.admin_entries = admins
    return Router(db, all_commands(), settings_table=all_settings())


async def push(
    db: Database, platform: str, org: str, chat: str, destination: dict[str, Any], key: str, text: str
) -> None:
    async with db.transaction() as store:
        await store.bind(platform=platform, org_key=org, chat_id=chat, chat_title="销售一组", user_id=None,
                         user_name=None, now=NOW)
        await enqueue_message(store, platform, destination, key, OutgoingMessage(text), NOW)


async def rows(db: Database) -> list[OutboxMessage]:
    async with db.session() as session:
        return list((await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())


def webhook_calls(wecom: FakeWeCom, key: str) -> int:
    return sum(1 for r in wecom.received if r.path == WEBHOOK_PATH and r.query.get("key") == key)


async def test_removed_wecom_webhook_is_marked_broken_and_the_lead_told_once(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession
) -> None:
    router = make_router(db, "boss")
    await say(router, "wecom", "wwcorp", "grpSales", "你好", "lisi", "李四")
    assert "主管" in await say(router, "wecom", "wwcorp", "grpSales", "设置 主管 @李四", "boss", "老板")
    fake.add_webhook_key(KEY)
    fake.add_webhook_key(NEW_KEY)
    reply = await say(router, "wecom", "wwcorp", "grpSales", f"设置 推送 {fake.webhook_url(KEY)}", "boss", "老板")
    assert "已设为机器人" in reply
    deliverer = WeComDeliverer(
        http, api_base=fake.base_url, corp_id="wwcorp", app_secret="sec", agent_id=1000002, database=db
    )
    worker = OutboxWorker(db, {"wecom": deliverer}, clock=lambda: NOW, admin_ids=("boss",))
    webhook = {"kind": "webhook", "key": KEY}
    team = {"kind": "team", "team_id": 1}

    fake.remove_webhook_key(KEY)  # the robot was removed from the group: 93000 from now on
    await push(db, "wecom", "wwcorp", "grpSales", webhook, wecom_dest_key(webhook), "站会提醒")
    await push(db, "wecom", "wwcorp", "grpSales", webhook, wecom_dest_key(webhook), "日报")
    await worker.run_once()

    first, second, notice = await rows(db)
    assert first.status == "failed" and "93000" in first.last_error
    assert second.status == "failed" and "destination broken" in second.last_error and "设置 推送" in second.last_error
    assert webhook_calls(fake, KEY) == 1  # the second message never reached the platform
    assert notice.status == "sent"
    assert notice.destination == {"kind": "member", "user_ids": ["lisi", "boss"], "corp_id": "wwcorp"}
    [to_lead] = fake.delivered_to("lisi")
    text = to_lead["markdown"]["content"]
    assert "销售一组" in text and "Webhook 地址无效或已被删除" in text and "设置 推送 <新地址>" in text
    assert KEY not in text and KEY[4:] not in str([r.last_error for r in await rows(db)])

    # Later messages — by key or by team — fail fast; no second notice in the same episode.
    await push(db, "wecom", "wwcorp", "grpSales", webhook, wecom_dest_key(webhook), "求助公告")
    await push(db, "wecom", "wwcorp", "grpSales", team, wecom_dest_key(team), "周报")
    await worker.run_once()
    assert [r.status for r in (await rows(db))[3:]] == ["failed", "failed"]
    assert webhook_calls(fake, KEY) == 1 and len(fake.delivered_to("lisi")) == 1
    async with db.session() as session:
        audits = (await session.execute(select(AuditLog).where(AuditLog.action == "configure"))).scalars().all()
    assert any("wecom_webhook_broken" in (a.after or {}) for a in audits)

    # The admin sets a new webhook: the mark is gone and pushes flow again.
    await say(router, "wecom", "wwcorp", "grpSales", f"设置 推送 {fake.webhook_url(NEW_KEY)}", "boss", "老板")
    await push(db, "wecom", "wwcorp", "grpSales", team, wecom_dest_key(team), "新的日报")
    await worker.run_once()
    assert (await rows(db))[-1].status == "sent"
    assert [m["markdown"]["content"] for m in fake.webhook_messages(NEW_KEY)] == ["新的日报"]

    # A new break is a new episode: the lead is told again.
    fake.remove_webhook_key(NEW_KEY)
    await push(db, "wecom", "wwcorp", "grpSales", team, wecom_dest_key(team), "晚报")
    await worker.run_once()
    assert len(fake.delivered_to("lisi")) == 2


async def test_dingtalk_keyword_rule_marks_the_custom_robot_broken(db: Database, http: aiohttp.ClientSession) -> None:
    async with FakeDingTalk() as ding:
        router = make_router(db, "boss")
        await say(router, "dingtalk", "dingcorp", "cidSales", "你好", "lisi", "李四")
        await say(router, "dingtalk", "dingcorp", "cidSales", "设置 主管 @李四", "boss", "老板")
        url = ding.add_custom_robot("robotK", keywords=("销售",))
        secret = "SECabcdef0123456789"
        reply = await say(router, "dingtalk", "dingcorp", "cidSales", f"设置 钉钉机器人 {url} {secret}", "boss", "老板")
        assert "自定义机器人" in reply
        deliverer = DingTalkDeliverer(dingtalk_settings(ding), http, db=db)
        worker = OutboxWorker(db, {"dingtalk": deliverer}, clock=lambda: NOW, admin_ids=("boss",))
        team = {"kind": "team", "chat_id": "cidSales"}
        ding.fail_custom_robot("robotK", 310000, "keywords not in content")
        for text in ("站会提醒", "日报"):
            await push(db, "dingtalk", "dingcorp", "cidSales", team, ding_dest_key(team), text)
        await worker.run_once()
        await push(db, "dingtalk", "dingcorp", "cidSales", team, ding_dest_key(team), "求助公告")
        await worker.run_once()

        statuses = [(r.destination.get("kind"), r.status) for r in await rows(db)]
        assert statuses == [("team", "failed"), ("team", "failed"), ("member", "sent"), ("team", "failed")]
        assert len([r for r in ding.received if "robot/send" in r.path]) == 1  # the rest failed fast
        [notice] = ding.work_notifications()
        assert set(notice.json["userid_list"].split(",")) == {"lisi", "boss"}
        text = notice.json["msg"]["markdown"]["text"]
        assert "关键词不符" in text and "设置 钉钉机器人 <地址> <SEC密钥>" in text and "销售一组" in text
        assert secret not in text and "robotK" not in text

        # Fixed at DingTalk and re-set by the admin: the mark is cleared and pushes flow again.
        ding.clear_custom_robot_failure("robotK")
        await say(router, "dingtalk", "dingcorp", "cidSales", f"设置 钉钉机器人 {url} {secret}", "boss", "老板")
        await push(db, "dingtalk", "dingcorp", "cidSales", team, ding_dest_key(team), "销售日报")
        await worker.run_once()
        assert (await rows(db))[-1].status == "sent"
        assert len(ding.work_notifications()) == 1


async def test_a_broken_push_in_one_tenant_is_not_reported_to_an_admin_id_of_another(
    db: Database, http: aiohttp.ClientSession
) -> None:
    """SALESBOT_ADMINS holds bare user ids: with two organisations on DingTalk, "boss" of corp A is not
    told about corp B's robot (B may have its own "boss", a different person)."""
    async with FakeDingTalk() as ding:
        await say(make_router(db, "boss"), "dingtalk", "corpA", "cidA", "你好", "boss", "老板")
        setup = make_router(db, "chief")  # corp B's own admin sets up its group
        await say(setup, "dingtalk", "corpB", "cidB", "你好", "lisi", "李四")
        await say(setup, "dingtalk", "corpB", "cidB", "设置 主管 @李四", "chief", "主任")
        url = ding.add_custom_robot("robotB", keywords=("销售",))
        command = f"设置 钉钉机器人 {url} SECabcdef0123456789"
        reply = await say(setup, "dingtalk", "corpB", "cidB", command, "chief", "主任")
        assert "自定义机器人" in reply
        deliverer = DingTalkDeliverer(dingtalk_settings(ding), http, db=db)
        worker = OutboxWorker(db, {"dingtalk": deliverer}, clock=lambda: NOW, admin_ids=("boss",))
        team = {"kind": "team", "chat_id": "cidB"}
        ding.fail_custom_robot("robotB", 310000, "keywords not in content")
        await push(db, "dingtalk", "corpB", "cidB", team, ding_dest_key(team), "站会提醒")
        await worker.run_once()
        [notice] = ding.work_notifications()
        assert notice.json["userid_list"].split(",") == ["lisi"]


async def test_an_admin_id_qualified_by_corp_is_an_admin_there_only(db: Database) -> None:
    """SALESBOT_ADMINS=corpA:boss: the same user id in corp B is a rep like any other."""
    router = make_router(db, "corpA:boss")
    await say(router, "dingtalk", "corpA", "cidA", "你好", "lisi", "李四")
    assert "主管" in await say(router, "dingtalk", "corpA", "cidA", "设置 主管 @李四", "boss", "老板")
    await say(router, "dingtalk", "corpB", "cidB", "你好", "wangwu", "王五")
    refused = await say(router, "dingtalk", "corpB", "cidB", "设置 主管 @王五", "boss", "另一位老板")
    assert "只有管理员" in refused
