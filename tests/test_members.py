"""The team's people on the console: who counts as a member, 成员, and 移除."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import AuditLog, Customer, Member
from tests.schedule_helpers import run_job, texts


async def test_a_mistyped_mention_on_the_console_is_refused_and_creates_nobody(bot, db) -> None:
    await bot.join("李四")
    await bot.say("认领 京东", user="张三")
    [reply] = await bot.say("转交 京东 @李", user="张三")
    assert "找不到成员「@李」" in reply
    async with db.session() as s:
        assert set((await s.execute(select(Member.name))).scalars()) == {"张三", "李四"}
        assert (await s.execute(select(Customer.owner_id))).scalar_one() is not None
    [reply] = await bot.say("转交 京东 @李四", user="张三")
    assert "转交给 @李四" in reply


async def test_a_speaker_line_introduces_a_member(bot) -> None:
    assert await bot.say_line("@王五: 帮助")
    await bot.say("认领 京东", user="张三")
    [reply] = await bot.say("协作 京东 @王五", user="张三")
    assert "@王五" in reply and "找不到" not in reply


async def test_members_lists_role_active_customers_and_leave(bot, clock) -> None:
    await bot.join("李四")
    await bot.say("设置 主管 @李四", user="老板")
    await bot.say("认领 京东", user="张三")
    await bot.say("认领 北京华为技术有限公司", user="张三")
    await bot.say("请假 到 周五", user="李四")
    [reply] = await bot.say("/members", user="张三")
    assert "「销售一组」共 3 人" in reply
    assert "· 张三（成员）跟进中 2 个客户" in reply
    assert "· 李四（主管）跟进中 0 个客户 · 🏖 请假中" in reply
    assert "· 老板（" in reply  # an admin (SALESBOT_ADMINS) who spoke in the group is one of it


async def test_a_lead_removes_a_member_whose_customers_go_to_the_lead(bot, db, clock) -> None:
    await bot.join("李四", "王五")
    await bot.say("设置 主管 @李四", user="老板")
    await bot.say("认领 京东", user="王五")
    await bot.say("认领 北京华为技术有限公司", user="张三")
    await bot.say("协作 华为 @王五", user="张三")
    [reply] = await bot.say("移除 @王五", user="张三")
    assert "只有主管" in reply
    [reply] = await bot.say("移除 @王五", user="李四")
    assert "已将 王五 移出「销售一组」" in reply and "京东" in reply and "已转给主管 @李四" in reply
    async with db.session() as s:
        owner = (await s.execute(select(Member.name).join(Customer, Customer.owner_id == Member.id)
                                 .where(Customer.name == "京东"))).scalar_one()
        assert owner == "李四"
        actions = [a.action for a in (await s.execute(select(AuditLog).order_by(AuditLog.id))).scalars()]
    assert actions.count("remove_member") == 2  # the membership and the customer, each with its message id
    [reply] = await bot.say("成员", user="李四")
    assert "王五" not in reply and "共 3 人" in reply
    [reply] = await bot.say("跟进 华为 我也去了", user="王五")
    assert "你已被移出「销售一组」" in reply
    [reply] = await bot.say("移除 @王五", user="李四")
    assert "不在「销售一组」里" in reply


async def test_a_removed_member_is_out_of_the_stand_up_and_the_pool_takes_customers_without_a_lead(
    bot, db, clock
) -> None:
    clock.set_local("2026-11-26 15:00")
    await bot.join("王五")
    await bot.say("认领 京东", user="王五")
    [reply] = await bot.say("移除 @王五", user="老板")
    assert "本组没有主管，已回到公海" in reply
    [pool] = await bot.say("公海", user="张三")
    assert "京东" in pool
    clock.set_local("2026-11-27 09:00")
    [prompt] = texts(await run_job(db, "standup", clock.now))
    assert "王五" not in prompt and "张三" in prompt
    [reply] = await bot.say("设置 成员 @王五", user="老板")
    assert "普通成员" in reply
    [reply] = await bot.say("成员", user="王五")
    assert "王五（成员）" in reply


async def test_a_lead_cannot_remove_another_lead_or_themself(bot) -> None:
    await bot.join("李四", "王五")
    await bot.say("设置 主管 @李四", user="老板")
    await bot.say("设置 主管 @王五", user="老板")
    [reply] = await bot.say("移除 @王五", user="李四")
    assert "只有管理员可以把主管移出本组" in reply
    [reply] = await bot.say("移除 @李四", user="李四")
    assert "不能把自己移出本组" in reply
    [reply] = await bot.say("移除", user="李四")
    assert "示例：移除 @李四" in reply


async def test_an_admin_named_in_salesbot_admins_is_listed_as_admin_and_cannot_be_removed(bot) -> None:
    await bot.join("李四", "老板")
    await bot.say("设置 主管 @李四", user="老板")
    [reply] = await bot.say("成员", user="张三")
    assert "· 老板（管理员）" in reply
    [reply] = await bot.say("移除 @老板", user="李四")
    assert reply == "「老板」是管理员，不能移出本组。"
