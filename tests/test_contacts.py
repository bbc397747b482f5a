"""联系人 as reps add them: shown on 客户, updated by name, and a phone already on another customer flagged."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import AuditLog, Contact


async def test_a_contact_is_added_and_shown_on_the_customer_card(bot, db) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    [reply] = await bot.say("联系人 华为 王强 采购总监 138-0013-8000 wxid_wangqiang", user="张三")
    assert "已添加「北京华为技术有限公司」的联系人：王强（采购总监 · 138-0013-8000 · 微信 wxid_wangqiang）" in reply
    [card] = await bot.say("客户 华为", user="张三")
    assert "联系人：王强（采购总监 · 138-0013-8000 · 微信 wxid_wangqiang）" in card
    [reply] = await bot.say("/contact 华为 王强 采购副总裁", user="张三")
    assert "已更新" in reply and "采购副总裁" in reply
    [listing] = await bot.say("联系人 华为", user="张三")
    assert "· 王强（采购副总裁 · 138-0013-8000 · 微信 wxid_wangqiang）" in listing
    async with db.session() as s:
        assert len((await s.execute(select(Contact))).scalars().all()) == 1
        actions = [(a.action, a.msg_id is not None) for a in (await s.execute(select(AuditLog))).scalars()]
    assert ("add_contact", True) in actions and ("update_contact", True) in actions


async def test_a_phone_already_on_another_customer_is_flagged_with_that_customer_and_owner(bot) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    await bot.say("联系人 华为 王强 采购总监 13800138000", user="张三")
    await bot.say("认领 深圳市海思半导体有限公司", user="李四")
    [reply] = await bot.say("联系人 海思 王总 +86-138-0013-8000", user="李四")
    assert "⚠️ 电话 +86-138-0013-8000 也是「北京华为技术有限公司」（负责人 @张三）的联系人「王强」" in reply


async def test_only_the_owner_collaborators_and_leads_add_contacts(bot) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    [reply] = await bot.say("联系人 华为 王强 13800138000", user="李四")
    assert "只有「北京华为技术有限公司」的负责人、协作人和主管可以添加联系人" in reply
    [reply] = await bot.say("联系人 华为", user="李四")
    assert "还没有联系人" in reply
