"""Customers belong to the organisation: 撞单 across teams, the company pool, collaborators from another team."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from storage.models import AuditLog, Customer


async def test_a_claim_of_another_teams_customer_names_only_owner_team_and_date(make_bot) -> None:
    one, two = make_bot(team="销售一组"), make_bot(team="销售二组")
    await one.say("认领 北京华为技术有限公司", user="张三")
    await one.say("跟进 华为 报价了 阶段:报价 金额:300万", user="张三")
    [reply] = await two.say("认领 华为技术", user="李四")
    assert "撞单" in reply and "@张三" in reply and "销售一组" in reply and "2026-11-27" in reply
    assert "报价" not in reply and "300万" not in reply
    [reply] = await two.say("客户 华为", user="李四")  # another team's customer stays private
    assert "找不到客户" in reply and "报价" not in reply


async def test_a_look_alike_in_another_team_asks_for_confirmation(make_bot) -> None:
    one, two = make_bot(team="销售一组"), make_bot(team="销售二组")
    await one.say("认领 华为技术有限公司", user="张三")
    [reply] = await two.say("认领 华为", user="李四")
    assert "相似" in reply and "张三（销售一组）" in reply and "认领 华为 确认" in reply


async def test_fifty_concurrent_claims_from_two_teams_leave_one_owner(make_bot, db) -> None:
    one, two = make_bot(team="销售一组"), make_bot(team="销售二组")
    replies = await asyncio.gather(
        *((one if i % 2 else two).say("认领 深圳市大疆创新科技有限公司", user=f"rep{i:02d}") for i in range(50))
    )
    flat = [r for rs in replies for r in rs]
    winners = [r for r in flat if "认领成功" in r]
    assert len(winners) == 1
    owner = winners[0].split("负责人：@")[1].split(" ")[0]
    refusals = [r for r in flat if "撞单" in r]
    assert len(refusals) == 49 and all(f"@{owner}" in r for r in refusals)
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Customer))).scalar_one() == 1
        claims = await s.execute(select(func.count()).select_from(AuditLog).where(AuditLog.action == "claim"))
        assert claims.scalar_one() == 1


async def test_the_pool_is_per_team_until_a_lead_shares_it_with_the_company(make_bot) -> None:
    one, two = make_bot(team="销售一组"), make_bot(team="销售二组")
    await one.say("认领 小米科技有限责任公司", user="张三")
    await one.say("释放 小米", user="张三")
    [pool] = await two.say("公海", user="李四")
    assert "小米" not in pool
    [reply] = await two.say("认领 小米科技", user="李四")
    assert "销售一组" in reply and "公海 共享" in reply
    [reply] = await one.say("公海 共享 小米", user="张三")
    assert "主管" in reply
    await one.join("王五")
    await one.say("设置 主管 @王五", user="老板")
    [reply] = await one.say("公海 共享 小米", user="王五")
    assert "公司公海" in reply
    [pool] = await two.say("公海", user="李四")
    assert "小米科技有限责任公司 · 公司公海" in pool
    [reply] = await two.say("认领 小米科技", user="李四")
    assert "公海领回" in reply
    [mine] = await two.say("我的", user="李四")
    assert "小米科技有限责任公司" in mine
    [reply] = await one.say("认领 小米科技", user="张三")
    assert "撞单" in reply and "销售二组" in reply


async def test_a_collaborator_from_another_team_sees_and_works_the_customer(make_bot) -> None:
    one, two = make_bot(team="销售一组"), make_bot(team="销售二组")
    await two.say("我的", user="李四")  # 李四 is in 销售二组
    await one.say("认领 网易", user="张三")
    [reply] = await one.say("协作 网易 @李四", user="张三")
    assert "@李四" in reply
    [card] = await two.say("客户 网易", user="李四")
    assert "负责人：张三" in card
    [reply] = await two.say("跟进 网易 帮忙做了演示", user="李四")
    assert "已记录" in reply
    [mine] = await two.say("我的", user="李四")
    assert "协作中" in mine and "网易" in mine
