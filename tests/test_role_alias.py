"""Issue #2: `/role @成员` is the short form of `设置 主管 @成员`; `/role @成员 rep` demotes. Admins only."""

from __future__ import annotations


async def test_role_alias_promotes_and_demotes(bot) -> None:  # type: ignore[no-untyped-def]
    await bot.join("李四", "王五")  # they speak in the group before they are @-ed
    await bot.say("认领 理想汽车", user="张三")
    [reply] = await bot.say("/role @王五", user="张三")
    assert "只有管理员" in reply
    [reply] = await bot.say("/role @王五", user="老板")
    assert "主管" in reply and "@王五" in reply
    [reply] = await bot.say("转交 理想 @李四", user="王五")  # a lead may move others' customers
    assert "转交给 @李四" in reply
    [reply] = await bot.say("/role @王五 rep", user="老板")
    assert "普通成员" in reply
    [reply] = await bot.say("转交 理想 @张三", user="王五")
    assert "只有负责人或主管" in reply


async def test_old_wording_and_errors_keep_working(bot) -> None:  # type: ignore[no-untyped-def]
    await bot.say("你好", user="王五")
    [reply] = await bot.say("设置主管 @王五", user="老板")
    assert "主管" in reply and "@王五" in reply
    [reply] = await bot.say("设置 主管 @王五", user="老板")
    assert "主管" in reply
    [reply] = await bot.say("/role", user="老板")
    assert "请 @ 要设为主管的成员" in reply
    [reply] = await bot.say("/role @王五 boss", user="老板")
    assert "lead" in reply and "rep" in reply
    [reply] = await bot.say("设置", user="老板")
    assert "主管：王五" in reply
