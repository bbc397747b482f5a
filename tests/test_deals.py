"""Deals (商机): repeat business on a won customer, a lost customer worked again, several open deals."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import AuditLog, Deal, DealEvent


async def _events(db) -> list[tuple]:  # type: ignore[no-untyped-def]
    async with db.session() as s:
        rows = await s.execute(select(DealEvent).order_by(DealEvent.id))
        return [(e.kind, e.stage_before, e.stage_after, e.amount_fen) for e in rows.scalars().all()]


async def test_repeat_business_on_a_won_customer_opens_a_second_deal(bot, db) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    await bot.say("赢单 华为 120万", user="张三")
    [reply] = await bot.say("跟进 华为 回访满意度", user="张三")
    assert (
        "已记录" in reply and "没有进行中的商机" in reply and "已赢单" in reply and "商机 北京华为技术有限公司" in reply
    )
    [reply] = await bot.say("商机 华为 二期 金额:80万 阶段:需求确认 预计:2027-03-31", user="张三")
    assert "二期" in reply and "需求确认" in reply and "80万" in reply
    [reply] = await bot.say("跟进 华为 已报价 阶段:报价", user="张三")
    assert "华为技术有限公司·二期" in reply and "需求确认 → 报价" in reply
    [reply] = await bot.say("赢单 华为 90万", user="张三")
    assert "二期" in reply and "90万" in reply
    [card] = await bot.say("客户 华为", user="张三")
    assert "商机（2）" in card and "首单 · 赢单 · 120万 · 已赢单" in card and "二期 · 赢单 · 90万 · 已赢单" in card
    assert await _events(db) == [
        ("opened", None, "线索", None),
        ("amount", None, None, 120_000_000),
        ("won", "线索", "赢单", 120_000_000),
        ("opened", None, "需求确认", 80_000_000),
        ("stage", "需求确认", "报价", 80_000_000),
        ("amount", None, None, 90_000_000),
        ("won", "报价", "赢单", 90_000_000),
    ]


async def test_several_open_deals_are_listed_and_the_rep_names_one(bot, db) -> None:
    await bot.say("认领 小米科技有限责任公司", user="张三")
    await bot.say("商机 小米 二期", user="张三")
    [reply] = await bot.say("跟进 小米 约了下周", user="张三")
    assert "2 个商机" in reply and "首单" in reply and "二期" in reply and "跟进 华为 二期" in reply
    [reply] = await bot.say("跟进 小米 二期 约了下周 金额:30万", user="张三")
    assert "小米科技有限责任公司·二期" in reply and "30万" in reply
    [reply] = await bot.say("输单 小米 首单 预算被砍", user="张三")
    assert "输单" in reply and "预算被砍" in reply
    [reply] = await bot.say("跟进 小米 再联系", user="张三")  # one open deal left: no name needed
    assert "·二期" in reply
    [mine] = await bot.say("我的", user="张三")
    assert "小米科技有限责任公司 · 线索 · 30万" in mine
    async with db.session() as s:
        deals = {d.name: d for d in (await s.execute(select(Deal))).scalars().all()}
    assert deals["首单"].status == "lost" and deals["首单"].lost_reason == "预算被砍"
    assert deals["二期"].status == "open" and deals["二期"].amount_fen == 30_000_000


async def test_a_lost_customer_is_worked_again_through_a_new_deal(bot, db) -> None:
    await bot.say("认领 京东", user="张三")
    await bot.say("输单 京东 选了别家", user="张三")
    [reply] = await bot.say("释放 京东", user="张三")
    assert "公海" in reply
    [pool] = await bot.say("公海", user="李四")
    assert "京东 · 商机已结束" in pool
    [reply] = await bot.say("认领 京东", user="李四")
    assert "公海领回" in reply and "阶段：线索" in reply
    [reply] = await bot.say("跟进 京东 重新接触 阶段:初访", user="李四")
    assert "线索 → 初访" in reply and "第2单" in reply
    async with db.session() as s:
        deals = [(d.name, d.status) for d in (await s.execute(select(Deal).order_by(Deal.id))).scalars().all()]
    assert deals == [("首单", "lost"), ("第2单", "open")]


async def test_a_lost_customer_its_owner_keeps_gets_a_new_deal_by_command(bot, db) -> None:
    await bot.say("认领 拼多多", user="张三")
    await bot.say("输单 拼多多", user="张三")
    [reply] = await bot.say("认领 拼多多", user="张三")
    assert "已输单" in reply and "商机 拼多多" in reply
    [reply] = await bot.say("赢单 拼多多", user="张三")
    assert "没有进行中的商机" in reply
    [reply] = await bot.say("跟进 拼多多 再谈 阶段:报价", user="张三")
    assert "没有进行中的商机" in reply
    [reply] = await bot.say("/deal 拼多多 复购", user="张三")
    assert "复购" in reply
    [reply] = await bot.say("赢单 拼多多 5万", user="张三")
    assert "复购" in reply and "5万" in reply


async def test_opening_a_deal_is_checked_and_audited(bot, db) -> None:
    await bot.say("认领 网易", user="张三")
    [reply] = await bot.say("商机 网易 二期", user="李四")
    assert "负责人和协作人" in reply
    [reply] = await bot.say("商机 网易 二期 阶段:赢单", user="张三")
    assert "跟进中的阶段" in reply
    [reply] = await bot.say("商机 网易 首单", user="张三")
    assert "已经有一个进行中的商机叫「首单」" in reply
    await bot.send("商机 网易 二期 金额:10万", user="张三", msg_id="m-deal")
    async with db.session() as s:
        audit = (await s.execute(select(AuditLog).where(AuditLog.action == "deal_open"))).scalar_one()
        event = (await s.execute(select(DealEvent).where(DealEvent.msg_id == "m-deal"))).scalar_one()
    assert audit.msg_id == "m-deal" and audit.after["name"] == "二期" and event.kind == "opened"


async def test_setting_a_win_back_is_an_unwon_event_with_the_amount_that_was_won(bot, db) -> None:
    await bot.say("认领 美团", user="张三")
    await bot.say("赢单 美团 50万", user="张三")
    [reply] = await bot.say("撤销赢单 美团", user="张三")
    assert "退回「谈判」" in reply
    assert (await _events(db))[-1] == ("unwon", "赢单", "谈判", 50_000_000)
