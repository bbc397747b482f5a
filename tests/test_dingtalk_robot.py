"""Reps command the bot from a DingTalk group over the robot HTTP callback; replies reach the group.

End to end through real HTTP: FakeDingTalk signs callbacks, the bot (aiohttp on port 0) answers at once
with the command committed, and the replies it queued reach the fake's sessionWebhook.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator

import pytest

from bot.adapters.dingtalk_send import sign
from storage.models import Customer, Deal, InboundMessage, Member, OutboxMessage, Team
from tests.dingtalk_support import DINGTALK_KEY, RunningBot, count, dingtalk_settings, outbox_rows, running_bot, text_of
from tests.fakes.dingtalk import FakeDingTalk
from tests.tcp_proxy import proxied_database


@pytest.fixture
async def ding() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk() as fake:
        yield fake


@pytest.fixture
async def bot(ding: FakeDingTalk, db) -> AsyncIterator[RunningBot]:  # type: ignore[no-untyped-def]
    async with running_bot(dingtalk_settings(ding), db) as running:
        yield running


async def say(bot: RunningBot, ding: FakeDingTalk, text: str, staff: str, nick: str, **kw: object) -> list[str]:
    """Send one command as DingTalk would; return the texts that reached the group for it."""
    before = len(ding.session_messages()) + len(ding.group_messages())
    status, _ = await bot.post_robot(*ding.robot_text_callback(text, staff, nick, **kw))  # type: ignore[arg-type]
    assert status == 200
    await bot.drain()
    after = ding.session_messages() + ding.group_messages()
    sent = sorted(after, key=lambda r: ding.received.index(r))
    return [text_of(r) for r in sent[before:]]


async def test_claim_duplicate_progress_and_help_flow(bot: RunningBot, ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    [reply] = await say(bot, ding, "认领 北京华为技术有限公司", "zhangsan", "张三")
    assert "认领成功" in reply and "@zhangsan" in reply
    [rec] = ding.session_messages()
    assert rec.json["msgtype"] == "markdown" and rec.json["markdown"]["title"]
    assert rec.json["at"]["atUserIds"] == ["zhangsan"]

    [refusal] = await say(bot, ding, "认领 华为技术", "lisi", "李四")
    assert "撞单" in refusal and "@zhangsan" in refusal

    [progress] = await say(bot, ding, "跟进 华为 拜访了采购部，下周报价", "zhangsan", "张三")
    assert "华为" in progress

    [ask] = await say(bot, ding, "求助 华为 需要一份同行业的报价模板", "zhangsan", "张三")
    assert "求助 #1" in ask
    [taken] = await say(bot, ding, "接 #1", "lisi", "李四")
    assert "接下" in taken and "@lisi" in taken and "@zhangsan" in taken

    async with db.session() as s:
        from sqlalchemy import select

        team = (await s.execute(select(Team))).scalar_one()
        assert (team.chat_id, team.name) == ("cid123", "销售一组")
        names = dict((await s.execute(select(Member.user_id, Member.name))).all())
        assert names == {"zhangsan": "张三", "lisi": "李四"}
    rows = await outbox_rows(db)
    assert rows and all(r.status == "sent" for r in rows)


async def test_reply_is_queued_in_the_commands_transaction(bot: RunningBot, ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    headers, body = ding.robot_text_callback("认领 小米科技", "zhangsan", "张三", msg_id="m-queued")
    payload = json.loads(body)
    status, _ = await bot.post_robot(headers, body)
    assert status == 200
    await bot.settle()
    # The command has committed: the reply is in the outbox, the inbound row is done, nothing sent yet.
    async with db.session() as s:
        from sqlalchemy import select

        inbound = (await s.execute(select(InboundMessage))).scalar_one()
    assert inbound.status == "done" and inbound.processed_at is not None
    [row] = await outbox_rows(db)
    assert row.platform == "dingtalk" and row.status == "pending"
    assert row.destination == {
        "kind": "session_webhook",
        "url": payload["sessionWebhook"],
        "expires_at": payload["sessionWebhookExpiredTime"],
        "chat_id": "cid123",
        "fallback": {"kind": "team", "chat_id": "cid123"},
    }
    assert row.dest_key == "dingtalk:chat:cid123"
    assert "认领成功" in row.body["text"]
    assert ding.session_messages() == []


async def test_a_callback_delivered_three_times_has_one_effect(bot: RunningBot, ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    headers, body = ding.robot_text_callback("认领 腾讯科技", "zhangsan", "张三", msg_id="msg-replayed")
    for _ in range(3):
        assert (await bot.post_robot(headers, body))[0] == 200
    await bot.drain()
    assert await count(db, Customer) == 1
    assert await count(db, InboundMessage) == 1
    assert len(ding.session_messages()) == 1


@pytest.mark.parametrize(
    "case, status",
    [("forged", 401), ("missing", 401), ("stale", 403), ("future", 403), ("malformed", 400), ("not_object", 400),
     ("oversized", 413)],
)
async def test_bad_callbacks_change_nothing(  # type: ignore[no-untyped-def]
    bot: RunningBot, ding: FakeDingTalk, db, caplog, case: str, status: int
) -> None:
    now_ms = int(time.time() * 1000)
    headers, body = ding.robot_text_callback("认领 字节跳动", "zhangsan", "张三")
    if case == "forged":
        headers["sign"] = sign("not-the-secret", headers["timestamp"])
    elif case == "missing":
        headers = {}
    elif case == "stale":
        headers, body = ding.robot_text_callback("认领 字节跳动", "zhangsan", "张三", timestamp=now_ms - 3_601_000)
    elif case == "future":
        headers, body = ding.robot_text_callback("认领 字节跳动", "zhangsan", "张三", timestamp=now_ms + 3_700_000)
    elif case == "malformed":
        body = b'{"msgId": "x", "text": '
    elif case == "not_object":
        body = b'["msgId"]'
    elif case == "oversized":
        payload = json.loads(body)
        payload["text"]["content"] = "认领 " + "大" * 30_000  # > 64 KB of UTF-8
        body = json.dumps(payload, ensure_ascii=False).encode()
    caplog.set_level(logging.WARNING, logger="salesbot.dingtalk")
    got, _ = await bot.post_robot(headers, body)
    assert got == status
    for model in (InboundMessage, Customer, OutboxMessage):
        assert await count(db, model) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "salesbot.dingtalk"]
    assert len(lines) == 1 and "rejected" in lines[0]
    assert ding.app_secret not in lines[0] and headers.get("sign", "#none#") not in lines[0]


async def test_mentions_exclude_the_bot_and_render_as_at_ids(bot: RunningBot, ding: FakeDingTalk) -> None:
    await say(bot, ding, "认领 大疆创新", "zhangsan", "张三")
    [reply] = await say(bot, ding, "设置 主管 @lisi", "boss", "老板", at_users=("lisi",))
    assert "@lisi" in reply
    rec = ding.session_messages()[-1]
    assert rec.json["at"]["atUserIds"] == ["lisi"]


async def test_expired_session_webhook_falls_back_to_the_group_api(bot: RunningBot, ding: FakeDingTalk) -> None:
    status, _ = await bot.post_robot(*ding.robot_text_callback("认领 美团", "zhangsan", "张三"))
    assert status == 200
    ding.expire_session_webhooks()
    await bot.drain()
    [group] = ding.group_messages("cid123")
    assert "认领成功" in group.msg_param["text"] and group.json["msgKey"] == "sampleMarkdown"
    assert ding.session_messages() == []


async def test_custom_robot_setting_is_masked_and_used_for_team_pushes(bot: RunningBot, ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    secret = "SEC0123456789abcdef0123456789abcdef"
    webhook = ding.add_custom_robot("customtoken123456", secret)
    [reply] = await say(bot, ding, f"设置 钉钉机器人 {webhook} {secret}", "boss", "老板")
    assert "自定义机器人" in reply and secret not in reply and "customtoken123456" not in reply
    async with db.session() as s:
        from sqlalchemy import select

        from storage.models import AuditLog

        audits = [json.dumps([a.before, a.after]) for a in (await s.execute(select(AuditLog))).scalars()]
    assert audits and not any(secret in a or "customtoken123456" in a for a in audits)

    await say(bot, ding, "求助 需要一份报价模板", "zhangsan", "张三")
    [pushed] = ding.custom_robot_messages("customtoken123456")
    assert "求助 #1" in pushed.json["markdown"]["text"]
    assert set(pushed.query) == {"access_token", "timestamp", "sign"}

    [off] = await say(bot, ding, "设置 钉钉机器人 关闭", "boss", "老板")
    assert "停用" in off
    await say(bot, ding, "求助 再要一份合同模板", "zhangsan", "张三")
    assert len(ding.custom_robot_messages()) == 1 and any("#2" in text_of(g) for g in ding.group_messages())


async def test_only_admins_may_set_the_custom_robot(bot: RunningBot, ding: FakeDingTalk) -> None:
    webhook = ding.add_custom_robot("tok2", "SEC0123456789")
    [reply] = await say(bot, ding, f"设置 钉钉机器人 {webhook} SEC0123456789", "zhangsan", "张三")
    assert "管理员" in reply


PAUSED = {"workers": 0, "recover_every": None}  # answers and records, never processes: "crashes" after acking


@pytest.fixture(autouse=True)
def short_accept_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dead process's lease lapses at once here (30 s in production)."""
    import bot.inbound as inbound_frame

    monkeypatch.setattr(inbound_frame, "ACCEPT_LEASE_S", 0.0)


async def inbound_rows(db) -> list[InboundMessage]:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    async with db.session() as s:
        return list((await s.execute(select(InboundMessage).order_by(InboundMessage.id))).scalars())


async def test_the_answer_comes_before_the_command_and_the_payload_is_recorded(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    headers, body = ding.robot_text_callback("认领 小米科技", "zhangsan", "张三", msg_id="m-early")
    async with running_bot(dingtalk_settings(ding), db, PAUSED) as paused:
        assert (await paused.post_robot(headers, body))[0] == 200
        [row] = await inbound_rows(db)
        assert (row.status, row.msg_id, row.processed_at) == ("received", "m-early", None)
        assert row.payload == json.loads(body)
        assert await count(db, Customer) == 0 and await count(db, OutboxMessage) == 0


async def test_a_crash_before_processing_loses_nothing_and_runs_once_after_restart(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    headers, body = ding.robot_text_callback("认领 腾讯科技", "zhangsan", "张三", msg_id="m-crash")
    async with running_bot(dingtalk_settings(ding), db, PAUSED) as doomed:
        assert (await doomed.post_robot(headers, body))[0] == 200
    # The process died after answering; DingTalk did not re-deliver (it got its 200).
    assert await count(db, Customer) == 0
    async with running_bot(dingtalk_settings(ding), db, {"recover_every": None}) as restarted:
        # A late re-delivery before recovery is recognised, and does not run the command by itself.
        assert (await restarted.post_robot(headers, body))[0] == 200
        await restarted.settle()
        assert await count(db, Customer) == 0
        inbound = restarted.app[DINGTALK_KEY]
        assert await inbound.recover(older_than_s=0) == 1
        await restarted.drain()
        assert await inbound.recover(older_than_s=0) == 0  # done: nothing left to recover
        assert (await restarted.post_robot(headers, body))[0] == 200  # and one more re-delivery
        await restarted.drain()
    assert await count(db, Customer) == 1
    [row] = await inbound_rows(db)
    assert row.status == "done" and row.processed_at is not None
    [reply] = ding.session_messages()
    assert "认领成功" in text_of(reply)


async def test_recovery_on_start_picks_up_stale_messages(ding: FakeDingTalk, db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import bot.inbound as inbound_frame

    async with running_bot(dingtalk_settings(ding), db, PAUSED) as doomed:
        for n in range(3):
            assert (await doomed.post_robot(*ding.robot_text_callback(f"认领 客户{n}", "zhangsan", "张三")))[0] == 200
    monkeypatch.setattr(inbound_frame, "RECOVER_AFTER_S", 0.0)
    async with running_bot(dingtalk_settings(ding), db) as restarted:  # the periodic pass runs at start
        await restarted.app[DINGTALK_KEY].recovered_once.wait()
        await restarted.drain()
    assert all(r.status == "done" for r in await inbound_rows(db))
    assert await count(db, Customer) == 3
    assert len(ding.session_messages()) == 3


async def test_redeliveries_during_processing_and_two_replicas_recovering_have_one_effect(  # type: ignore[no-untyped-def]
    ding: FakeDingTalk, db
) -> None:
    headers, body = ding.robot_text_callback("认领 字节跳动", "zhangsan", "张三", msg_id="m-race")
    async with running_bot(dingtalk_settings(ding), db, PAUSED) as doomed:
        assert (await doomed.post_robot(headers, body))[0] == 200
    options = {"recover_every": None}
    async with (
        running_bot(dingtalk_settings(ding), db, options) as a,
        running_bot(dingtalk_settings(ding), db, options) as b,
    ):
        ia, ib = a.app[DINGTALK_KEY], b.app[DINGTALK_KEY]
        # Both replicas recover at once while DingTalk re-delivers to both: one claim, one command.
        results = await asyncio.gather(ia.recover(older_than_s=0), ib.recover(older_than_s=0),
                                       a.post_robot(headers, body), b.post_robot(headers, body))
        assert sorted(results[:2]) == [0, 1]
        assert [r[0] for r in results[2:]] == [200, 200]
        # Even if both replicas ran the command (a lease lapsed mid-command), the row allows one effect.
        from bot.adapters.dingtalk_receive import parse_robot_message

        msg = parse_robot_message(json.loads(body), dingtalk_settings(ding))
        await asyncio.gather(ia.process(msg), ib.process(msg))
        await a.drain()
        await b.drain()
    assert await count(db, Customer) == 1
    assert len(ding.session_messages()) == 1
    [row] = await inbound_rows(db)
    assert row.status == "done"


async def test_concurrent_redeliveries_of_a_new_message_have_one_effect(  # type: ignore[no-untyped-def]
    bot: RunningBot, ding: FakeDingTalk, db
) -> None:
    headers, body = ding.robot_text_callback("认领 百度在线", "zhangsan", "张三", msg_id="m-burst")
    statuses = await asyncio.gather(*(bot.post_robot(headers, body) for _ in range(5)))
    assert [s for s, _ in statuses] == [200] * 5
    await bot.drain()
    assert await count(db, Customer) == 1 and await count(db, InboundMessage) == 1
    assert len(ding.session_messages()) == 1


async def test_a_message_waiting_in_a_live_replicas_queue_is_not_recovered_elsewhere(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    import bot.inbound as inbound_frame

    inbound_frame.ACCEPT_LEASE_S = 30.0  # restored by the autouse fixture's monkeypatch
    async with running_bot(dingtalk_settings(ding), db, PAUSED) as busy:  # backed up: nothing processed yet
        assert (await busy.post_robot(*ding.robot_text_callback("认领 京东", "zhangsan", "张三")))[0] == 200
        async with running_bot(dingtalk_settings(ding), db, {"recover_every": None}) as other:
            assert await other.app[DINGTALK_KEY].recover(older_than_s=0) == 0


async def test_a_burst_shares_one_transaction_and_a_refusal_inside_it_changes_nothing(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    """Under load the queued commands commit together; each still has all of its effects or none."""
    from sqlalchemy import select

    from storage.models import AuditLog, FollowUp

    async with running_bot(dingtalk_settings(ding), db) as bot:
        await say(bot, ding, "认领 北京华为技术有限公司", "zhangsan", "张三")
        await say(bot, ding, "认领 小米科技", "lisi", "李四")
    burst = [
        ("跟进 华为 第一次拜访", "zhangsan", "张三"),
        ("跟进 华为 我也去拜访了", "lisi", "李四"),  # refused: not the owner
        ("跟进 小米 报价已发", "lisi", "李四"),
        ("跟进 不存在的客户 随便写写", "zhangsan", "张三"),  # refused: no such customer
        ("跟进 华为 第二次拜访 阶段:报价", "zhangsan", "张三"),
    ]
    callbacks = [ding.robot_text_callback(text, staff, nick) for text, staff, nick in burst]
    before = len(ding.session_messages())
    async with running_bot(dingtalk_settings(ding), db, PAUSED) as backed_up:
        for headers, body in callbacks:
            assert (await backed_up.post_robot(headers, body))[0] == 200
        inbound = backed_up.app[DINGTALK_KEY]
        inbound.start(workers=1, recover_every=None)  # the worker finds all five waiting
        await backed_up.drain()
        assert inbound.batch_sizes == {5: 1}
    # One group, so one outbox destination: the replies arrive in the order the messages were sent.
    answered = [text_of(r) for r in ding.session_messages()[before:]]
    assert len(answered) == 5
    assert "华为" in answered[0] and "阶段" not in answered[0]
    assert "只有" in answered[1] and "负责人" in answered[1]
    assert "小米" in answered[2]
    assert "找不到客户" in answered[3]
    assert "华为" in answered[4]
    async with db.session() as s:
        notes = (await s.execute(select(FollowUp.content).order_by(FollowUp.id))).scalars().all()
        huawei = (
            await s.execute(
                select(Deal).join(Customer, Customer.id == Deal.customer_id)
                .where(Customer.name == "北京华为技术有限公司")
            )
        ).scalar_one()
        audits = (await s.execute(select(AuditLog.action).where(AuditLog.action == "followup"))).scalars().all()
    assert list(notes) == ["第一次拜访", "报价已发", "第二次拜访"]
    assert huawei.stage == "报价" and len(audits) == 3
    assert {r.status for r in await inbound_rows(db)} == {"done"}


async def test_a_refusal_after_a_write_inside_a_burst_still_leaves_nothing_behind(  # type: ignore[no-untyped-def]
        ding: FakeDingTalk, db, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal before any write is answered inside the batch; one after a write rolls the batch back."""
    from sqlalchemy import select

    from handlers import followups
    from handlers.commands import UserError
    from storage.models import AuditLog, FollowUp

    async with running_bot(dingtalk_settings(ding), db) as bot:
        await say(bot, ding, "认领 北京华为技术有限公司", "zhangsan", "张三")
    real_label = followups.deal_label

    def label(customer, deal):  # type: ignore[no-untyped-def]  # runs after the follow-up row was written
        if "拒绝" in customer.name or deal is not None and deal.stage == "谈判":
            raise UserError("这条跟进不能记录。")
        return real_label(customer, deal)

    monkeypatch.setattr(followups, "deal_label", label)
    burst = [
        ("跟进 华为 第一次拜访", "zhangsan", "张三"),
        ("跟进 不存在的客户 随便写写", "zhangsan", "张三"),  # refused before writing
        ("跟进 华为 谈价格 阶段:谈判", "zhangsan", "张三"),  # refused after writing its follow-up
        ("跟进 华为 第二次拜访", "zhangsan", "张三"),
    ]
    callbacks = [ding.robot_text_callback(text, staff, nick) for text, staff, nick in burst]
    before = len(ding.session_messages())
    async with running_bot(dingtalk_settings(ding), db, PAUSED) as backed_up:
        for headers, body in callbacks:
            assert (await backed_up.post_robot(headers, body))[0] == 200
        backed_up.app[DINGTALK_KEY].start(workers=1, recover_every=None)
        await backed_up.drain()
    answered = [text_of(r) for r in ding.session_messages()[before:]]
    expected = ["已记录", "找不到客户", "不能记录", "华为"]
    assert [word in text for word, text in zip(expected, answered, strict=True)] == [True] * 4
    async with db.session() as s:
        notes = (await s.execute(select(FollowUp.content).order_by(FollowUp.id))).scalars().all()
        audits = (await s.execute(select(AuditLog.action).where(AuditLog.action == "followup"))).scalars().all()
        stage = (await s.execute(select(Deal.stage))).scalar_one()
    assert list(notes) == ["第一次拜访", "第二次拜访"] and len(audits) == 2 and stage != "谈判"
    assert {r.status for r in await inbound_rows(db)} == {"done"}


async def test_a_burst_sees_what_its_earlier_messages_changed(ding: FakeDingTalk, db) -> None:  # type: ignore[no-untyped-def]
    """One transaction, read-ahead senders and deferred audit rows: a later message of the batch still sees
    the claim an earlier one made (the daily limit counts it) and a removal an earlier one made."""
    async with running_bot(dingtalk_settings(ding), db) as bot:
        await say(bot, ding, "设置 每日认领 2", "boss", "老板")
        await say(bot, ding, "认领 北京华为技术有限公司", "zhangsan", "张三")
        await say(bot, ding, "认领 小米科技", "lisi", "李四")
    burst = [
        ("认领 京东", "lisi", "李四", ()),
        ("认领 百度在线", "lisi", "李四", ()),  # the third today: the limit counts the claim just before
        ("移除 @lisi", "boss", "老板", ("lisi",)),
        ("跟进 小米 报价已发", "lisi", "李四", ()),  # removed a message ago
        ("跟进 华为 第一次拜访", "zhangsan", "张三", ()),
    ]
    callbacks = [ding.robot_text_callback(text, staff, nick, at_users=at) for text, staff, nick, at in burst]
    before = len(ding.session_messages())
    async with running_bot(dingtalk_settings(ding), db, PAUSED) as backed_up:
        for headers, body in callbacks:
            assert (await backed_up.post_robot(headers, body))[0] == 200
        inbound = backed_up.app[DINGTALK_KEY]
        inbound.start(workers=1, recover_every=None)
        await backed_up.drain()
        assert inbound.batch_sizes == {5: 1}
    answered = [text_of(r) for r in ding.session_messages()[before:]]
    assert "认领成功" in answered[0]
    assert "每日上限 2" in answered[1]
    assert "移出" in answered[2]
    # A removed member's answer is settled after the batch (bot.inbound), so it comes last.
    assert "已记录" in answered[3] and "你已被移出" in answered[4]
    async with db.session() as s:
        from sqlalchemy import select

        from storage.models import AuditLog, FollowUp

        claims = (await s.execute(select(AuditLog.msg_id).where(AuditLog.action == "claim"))).scalars().all()
        notes = (await s.execute(select(FollowUp.content))).scalars().all()
    assert len(claims) == 3 and list(notes) == ["第一次拜访"]


async def test_ten_reps_claiming_one_customer_in_one_burst_get_one_owner_and_nine_refusals(  # type: ignore[no-untyped-def]
    ding: FakeDingTalk, db
) -> None:
    """撞单 inside a batch: every claim after the first is refused and names the owner; nothing half-written."""
    from sqlalchemy import select

    reps = [(f"rep{n}", f"销售{n}") for n in range(10)]
    async with running_bot(dingtalk_settings(ding), db, PAUSED) as backed_up:
        for staff, nick in reps:
            headers, body = ding.robot_text_callback("认领 深圳市大疆创新科技有限公司", staff, nick)
            assert (await backed_up.post_robot(headers, body))[0] == 200
        inbound = backed_up.app[DINGTALK_KEY]
        inbound.start(workers=1, recover_every=None)
        await backed_up.drain()
        assert inbound.batch_sizes == {10: 1}
    answered = [text_of(r) for r in ding.session_messages()]
    assert len(answered) == 10
    assert "认领成功" in answered[0] and "@rep0" in answered[0]
    assert all("撞单" in text and "@rep0" in text for text in answered[1:])
    async with db.session() as s:
        customers = (await s.execute(select(Customer))).scalars().all()
        owner = (await s.execute(select(Member).where(Member.id == customers[0].owner_id))).scalar_one()
    assert len(customers) == 1 and owner.user_id == "rep0"
    assert {r.status for r in await inbound_rows(db)} == {"done"}


@pytest.mark.skipif(not os.environ.get("SALESBOT_TEST_PG_URL"), reason="needs SALESBOT_TEST_PG_URL")
async def test_a_callback_that_cannot_be_recorded_gets_503_and_its_redelivery_runs_once(
    ding: FakeDingTalk, pg_schema: str
) -> None:
    """The database goes away: DingTalk is told to retry (nothing half-recorded); once it is back, the
    re-delivery is recorded and runs once."""


    proxy, db = await proxied_database(os.environ["SALESBOT_TEST_PG_URL"], pg_schema)
    try:
        async with running_bot(dingtalk_settings(ding), db, {"recover_every": None}) as bot:
            assert (await bot.post_robot(*ding.robot_text_callback("认领 断库前科技", "zhangsan", "张三")))[0] == 200
            await bot.drain()
            await proxy.cut()
            headers, body = ding.robot_text_callback("认领 断库中科技", "zhangsan", "张三", msg_id="m-outage")
            status, text = await bot.post_robot(headers, body)
            assert status == 503 and "retry" in text
            await proxy.start(proxy.port)
            status, _ = await bot.post_robot(headers, body)  # DingTalk re-delivers
            assert status == 200
            assert (await bot.post_robot(headers, body))[0] == 200  # and once more: still one effect
            await bot.drain()
        assert await count(db, Customer, Customer.name.in_(["断库前科技", "断库中科技"])) == 2
        [reply] = [t for t in (text_of(r) for r in ding.session_messages()) if "断库中" in t]
        assert "认领成功" in reply
    finally:
        await db.close()
        await proxy.cut()
