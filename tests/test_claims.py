"""Claiming customers and the protection against 撞单."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from storage.models import AuditLog, Customer


async def test_a_new_customer_can_be_claimed(bot) -> None:
    [reply] = await bot.say("认领 北京华为技术有限公司", user="张三")
    assert "认领成功" in reply and "北京华为技术有限公司" in reply and "@张三" in reply


async def test_a_second_claim_of_the_same_customer_names_the_owner(bot) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    [reply] = await bot.say("认领 华为技术", user="李四")
    assert "撞单" in reply and "@张三" in reply and "2026-11-27" in reply


async def test_claiming_your_own_customer_again_says_so(bot) -> None:
    await bot.say("认领 腾讯科技（深圳）有限公司", user="张三")
    [reply] = await bot.say("/claim 腾讯科技", user="张三")
    assert "已经是你的客户" in reply


async def test_a_similar_name_asks_for_confirmation_before_creating(bot, db) -> None:
    await bot.say("认领 华为技术有限公司", user="张三")
    [reply] = await bot.say("认领 华为", user="李四")
    assert "相似" in reply and "认领 华为 确认" in reply
    [reply] = await bot.say("认领 华为 确认", user="李四")
    assert "认领成功" in reply
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Customer))).scalar_one() == 2


async def test_fifty_concurrent_claims_leave_exactly_one_owner(make_bot, db) -> None:
    bot = make_bot()
    replies = await asyncio.gather(*(bot.say("认领 深圳市大疆创新科技有限公司", user=f"rep{i:02d}") for i in range(50)))
    flat = [r for rs in replies for r in rs]
    winners = [r for r in flat if "认领成功" in r]
    assert len(winners) == 1
    owner = winners[0].split("负责人：@")[1].split(" ")[0]
    refusals = [r for r in flat if "撞单" in r]
    assert len(refusals) == 49 and all(f"@{owner}" in r for r in refusals)
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Customer))).scalar_one() == 1
        claims = (
            await s.execute(select(func.count()).select_from(AuditLog).where(AuditLog.action == "claim"))
        ).scalar_one()
        assert claims == 1


async def test_a_released_customer_can_be_claimed_from_the_pool_by_someone_else(bot) -> None:
    await bot.say("认领 小米科技有限责任公司", user="张三")
    [reply] = await bot.say("释放 小米", user="张三")
    assert "公海" in reply
    [pool] = await bot.say("公海", user="李四")
    assert "小米科技有限责任公司" in pool
    [reply] = await bot.say("认领 小米科技", user="李四")
    assert "公海领回" in reply


async def test_the_previous_owner_waits_out_the_cooldown(bot, clock) -> None:
    await bot.say("认领 小米科技有限责任公司", user="张三")
    await bot.say("释放 小米", user="张三")
    [reply] = await bot.say("认领 小米科技", user="张三")
    assert "冷却期 7 天" in reply and "2026-12-04" in reply
    clock.advance(days=7, minutes=1)
    [reply] = await bot.say("认领 小米科技", user="张三")
    assert "公海领回" in reply


async def test_the_per_rep_cap_refuses_with_the_rule_name(bot) -> None:
    await bot.say("设置 上限 2", user="老板")
    await bot.say("认领 甲公司", user="张三")
    await bot.say("认领 乙公司", user="张三")
    [reply] = await bot.say("认领 丙公司", user="张三")
    assert "上限" in reply and "2" in reply
    await bot.say("赢单 甲公司 10万", user="张三")
    [reply] = await bot.say("认领 丙公司", user="张三")
    assert "认领成功" in reply


async def test_the_daily_claim_limit_clears_at_local_midnight(bot, clock) -> None:
    await bot.say("设置 每日认领 1", user="老板")
    clock.set_local("2026-11-27 23:30")
    await bot.say("认领 甲公司", user="张三")
    [reply] = await bot.say("认领 乙公司", user="张三")
    assert "每日认领上限" in reply
    clock.set_local("2026-11-28 00:05")
    [reply] = await bot.say("认领 乙公司", user="张三")
    assert "认领成功" in reply
