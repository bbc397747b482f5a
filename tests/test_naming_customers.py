"""Naming a customer in a command: the place a rep writes narrows, their own customers win, and look-alikes
written apart (traditional characters, a slip, a place in brackets) are caught at 认领."""

from __future__ import annotations


async def test_a_place_word_narrows_to_the_customer_in_that_place(bot) -> None:
    await bot.say("认领 上海腾讯科技有限公司", user="张三")
    await bot.say("认领 深圳市腾讯计算机系统有限公司 确认", user="张三")
    [reply] = await bot.say("跟进 腾讯 聊了聊", user="张三")
    assert "对应多个客户" in reply
    [reply] = await bot.say("跟进 上海腾讯 约了下周拜访", user="张三")
    assert "已记录「上海腾讯科技有限公司」的跟进" in reply
    [reply] = await bot.say("跟进 深圳腾讯 发了报价", user="张三")
    assert "已记录「深圳市腾讯计算机系统有限公司」的跟进" in reply


async def test_the_reps_own_customer_wins_over_a_pool_look_alike(bot) -> None:
    await bot.join("李四")
    await bot.say("认领 北京华为技术有限公司", user="张三")
    await bot.say("认领 华为技木 确认", user="李四")
    await bot.say("释放 华为技木", user="李四")
    [reply] = await bot.say("跟进 华为 已约拜访", user="张三")
    assert "已记录「北京华为技术有限公司」的跟进" in reply


async def test_a_collaborator_counts_as_their_own_customer(bot) -> None:
    await bot.join("李四")
    await bot.say("认领 北京华为技术有限公司", user="张三")
    await bot.say("认领 华为技木 确认", user="王五")
    await bot.say("协作 北京华为 @李四", user="张三")
    [reply] = await bot.say("跟进 华为 一起拜访了", user="李四")
    assert "已记录「北京华为技术有限公司」的跟进" in reply


async def test_traditional_characters_are_the_same_customer_at_claim(bot) -> None:
    await bot.say("认领 字节跳动", user="张三")
    [reply] = await bot.say("认领 字節跳動", user="李四")
    assert "字节跳动" in reply and "@张三" in reply and "认领成功" not in reply


async def test_a_place_in_brackets_or_inline_is_the_same_customer_at_claim(bot) -> None:
    await bot.say("认领 江门市新会区华润燃气有限公司", user="张三")
    [reply] = await bot.say("认领 华润燃气（江门新会）有限公司", user="李四")
    assert "@张三" in reply and "认领成功" not in reply
    await bot.say("认领 网易（杭州）网络有限公司", user="张三")
    [reply] = await bot.say("认领 网易杭州网络有限公司", user="李四")
    assert "@张三" in reply and "认领成功" not in reply


async def test_a_one_character_slip_asks_before_claiming(bot) -> None:
    await bot.say("认领 华为技术有限公司", user="张三")
    [reply] = await bot.say("认领 华为技木", user="李四")
    assert "华为技术有限公司" in reply and "确认" in reply and "认领成功" not in reply


async def test_companies_that_share_a_word_stay_claimable(bot) -> None:
    await bot.say("认领 招商银行", user="张三")
    [reply] = await bot.say("认领 招商证券", user="李四")
    assert "认领成功" in reply
    await bot.say("认领 中国银行", user="张三")
    [reply] = await bot.say("认领 中国农业银行", user="李四")
    assert "认领成功" in reply
