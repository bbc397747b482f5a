"""Follow-ups, closing deals and asking teammates for help, as reps type them in the group."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from storage.models import AuditLog, Customer, Deal, FollowUp


async def test_progress_records_stage_amount_and_next_date(bot, db) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    [reply] = await bot.say("跟进 华为 已约下周拜访 阶段:初访 金额:50万 下次:下周一", user="张三")
    assert "线索 → 初访" in reply and "50万" in reply and "11-30" in reply
    async with db.session() as s:
        customer = (await s.execute(select(Customer))).scalar_one()
        deal = (await s.execute(select(Deal))).scalar_one()
        assert (deal.stage, deal.amount_fen, str(customer.next_followup_on)) == (
            "初访", 50_000_000, "2026-11-30"
        )
        record = (await s.execute(select(FollowUp))).scalar_one()
        assert (record.stage_before, record.stage_after, record.content) == ("线索", "初访", "已约下周拜访")


async def test_full_width_punctuation_from_chinese_input_methods_is_understood(bot) -> None:
    await bot.say("认领　上海浦东发展银行股份有限公司", user="张三")
    [reply] = await bot.say("跟进　浦东　已报价　阶段：报价　金额：１.２亿", user="张三")
    assert "报价" in reply and "1.2亿" in reply


async def test_only_owner_and_collaborators_may_post_progress(bot) -> None:
    await bot.say("认领 字节跳动有限公司", user="张三")
    [reply] = await bot.say("跟进 字节 我也去拜访了", user="李四")
    assert "只有" in reply and "负责人和协作人" in reply
    [reply] = await bot.say("协作 字节 @李四", user="张三")
    assert "@李四" in reply
    [reply] = await bot.say("跟进 字节 我也去拜访了", user="李四")
    assert "已记录" in reply


async def test_bad_stage_amount_or_date_gets_an_example_and_changes_nothing(bot, db) -> None:
    await bot.say("认领 美团", user="张三")
    for text, expected in [
        ("跟进 美团 聊了聊 阶段:吃饭", "阶段「吃饭」不认识"),
        ("跟进 美团 聊了聊 金额:很多", "示例"),
        ("跟进 美团 聊了聊 下次:改天", "示例"),
        ("跟进 美团 聊了聊 下次:2020-01-01", "已经过去"),
    ]:
        [reply] = await bot.say(text, user="张三")
        assert expected in reply, (text, reply)
    async with db.session() as s:
        assert (await s.execute(select(FollowUp))).first() is None
        assert (await s.execute(select(Deal.stage))).scalar_one() == "线索"


async def test_won_and_lost_close_the_customer(bot) -> None:
    await bot.say("认领 京东", user="张三")
    [reply] = await bot.say("赢单 京东 120万", user="张三")
    assert "赢单" in reply and "120万" in reply
    [reply] = await bot.say("跟进 京东 再聊聊", user="张三")
    assert "已赢单" in reply
    await bot.say("认领 拼多多", user="张三")
    [reply] = await bot.say("/lost 拼多多 预算被砍", user="张三")
    assert "输单" in reply and "预算被砍" in reply


async def test_customer_card_and_mine_show_the_latest_state(bot) -> None:
    await bot.say("认领 网易", user="张三")
    await bot.say("跟进 网易 电话沟通 下次:明天", user="张三")
    [card] = await bot.say("客户 网易", user="李四")
    assert "负责人：张三" in card and "电话沟通" in card and "明天" in card
    [mine] = await bot.say("我的", user="张三")
    assert "网易" in mine and "下次 明天" in mine


async def test_an_ambiguous_name_lists_the_candidates(bot) -> None:
    await bot.say("认领 华为技术有限公司", user="张三")
    await bot.say("认领 华为终端有限公司", user="张三")
    [reply] = await bot.say("客户 华为", user="张三")
    assert "多个客户" in reply and "华为技术有限公司" in reply and "华为终端有限公司" in reply


async def test_a_help_request_is_numbered_taken_and_resolved(bot) -> None:
    await bot.say("认领 小红书", user="张三")
    [ask] = await bot.say("求助 小红书 需要一份报价模板", user="张三")
    assert "#1" in ask and "客户：小红书" in ask and "接 #1" in ask
    [reply] = await bot.say("接 #1", user="张三")
    assert "自己发起" in reply
    [reply] = await bot.say("/take 1", user="李四")
    assert "@李四" in reply and "@张三" in reply
    [listing] = await bot.say("求助列表", user="王五")
    assert "#1" in listing and "李四 处理中" in listing
    [reply] = await bot.say("解决 #1 模板已发群文件", user="王五")
    assert "只有求助人或接手的同事" in reply
    [reply] = await bot.say("解决 #1 模板已发群文件", user="张三")
    assert "已解决" in reply and "@李四" in reply
    [second] = await bot.say("求助 谁有电信的关系", user="王五")
    assert "#2" in second


async def test_two_helpers_racing_for_one_request_get_one_winner(bot) -> None:
    await bot.say("求助 需要一个演示账号", user="张三")
    replies = await asyncio.gather(*(bot.say("接 #1", user=f"rep{i}") for i in range(10)))
    flat = [r for rs in replies for r in rs]
    assert sum("接下了" in r for r in flat) == 1
    assert sum("已由" in r for r in flat) == 9


async def test_every_change_is_audited_with_the_message_that_caused_it(bot, db) -> None:
    await bot.send("认领 快手", user="张三", msg_id="m-claim")
    await bot.send("跟进 快手 初次拜访 阶段:初访", user="张三", msg_id="m-progress")
    async with db.session() as s:
        rows = (await s.execute(select(AuditLog).order_by(AuditLog.id))).scalars().all()
    assert [(r.action, r.msg_id) for r in rows] == [("claim", "m-claim"), ("followup", "m-progress")]
    assert rows[1].before["stage"] == "线索" and rows[1].after["stage"] == "初访"
