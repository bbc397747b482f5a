"""The weekly retrospective, checked against a seeded team with known numbers, compared with last week."""

from __future__ import annotations

from storage.database import Database
from tests.schedule_helpers import run_job, texts


async def _seed(bot, db, clock) -> None:  # type: ignore[no-untyped-def]
    clock.set_local("2026-10-20 10:00")
    await bot.say("认领 甲公司", user="王五")  # reclaimed on Tuesday of this week
    clock.set_local("2026-11-10 10:00")
    await bot.say("认领 乙公司", user="王五")  # goes idle (14 days) this week
    clock.set_local("2026-11-18 10:00")  # last week
    await bot.say("认领 上周客户", user="张三")
    await bot.say("赢单 上周客户 10万", user="张三")
    clock.set_local("2026-11-23 08:00")  # Monday of this week: everyone answers the stand-up
    for user in ("张三", "李四", "王五"):
        await bot.say("晨会 打电话", user=user)
    await bot.say("设置 主管 @李四", user="老板")
    clock.set_local("2026-11-24 08:00")
    await bot.say("晨会 拜访", user="张三")
    clock.set_local("2026-11-24 08:30")
    await run_job(db, "reclaim", clock.now)
    clock.set_local("2026-11-24 10:00")
    await bot.say("认领 丙公司", user="张三")
    await bot.say("认领 丁公司", user="张三")
    await bot.say("求助 需要报价模板", user="张三")  # #1, taken after 2 h
    clock.set_local("2026-11-24 12:00")
    await bot.say("接 #1", user="李四")
    clock.set_local("2026-11-25 10:00")
    await bot.say("认领 戊公司", user="李四")
    await bot.say("跟进 丙公司 首次拜访 阶段:初访", user="张三")
    await bot.say("求助 需要案例", user="王五")  # #2, taken after 1 h and resolved
    clock.set_local("2026-11-25 11:00")
    await bot.say("接 #2", user="李四")
    await bot.say("解决 #2 已发", user="李四")
    clock.set_local("2026-11-26 09:00")
    await bot.say("求助 需要法务", user="李四")  # #3, taken after 4 h
    clock.set_local("2026-11-26 13:00")
    await bot.say("接 #3", user="张三")
    await bot.say("赢单 戊公司 50万", user="李四")
    await bot.say("赢单 丁公司 30万", user="张三")


async def test_the_retro_has_the_weeks_numbers_compared_with_last_week(bot, db: Database, clock) -> None:
    await _seed(bot, db, clock)
    clock.set_local("2026-11-27 17:00")
    [retro] = texts(await run_job(db, "retro", clock.now))
    assert "销售一组 周复盘 · 11月23日–11月29日" in retro
    assert "赢单 2 个（较上周 ↑1），金额 80万（上周 10万）" in retro
    assert "新客户 3 个（较上周 ↑2）" in retro
    assert "跟进 3 次（较上周 ↑2）" in retro
    assert "阶段推进：初访 1，赢单 2" in retro
    assert "· 张三：2 次（较上周 ↑1）" in retro and "· 李四：1 次（较上周 ↑1）" in retro
    assert "求助 发起 3 · 被接 3 · 解决 1；接单中位用时 2.0 小时" in retro
    assert "协作之星：李四（5 分）、张三（1 分）" in retro  # ledger: 李四 took 2 (+1 each) and resolved 1 (+3)
    # Reps 张三 and 王五 × 5 working days = 10 expected (李四 is a lead, 老板 an admin by SALESBOT_ADMINS);
    # they answered twice on Monday and once on Tuesday. Last week they were already members and never answered.
    assert "晨会参与率：30%（上周 0%）" in retro
    assert "沉默（14 天无跟进）的客户 1 个：乙公司" in retro
    assert "🔁 退回公海 1" in retro and "· 甲公司 王五 → 公海（无跟进回收）" in retro


async def test_retro_on_demand_is_for_leads_and_can_show_last_week(bot, db: Database, clock) -> None:
    await _seed(bot, db, clock)
    clock.set_local("2026-12-01 10:00")
    [reply] = await bot.say("复盘", user="张三")
    assert "只有主管" in reply
    [reply] = await bot.say("/retro 上周", user="李四")
    assert "11月23日–11月29日" in reply and "赢单 2 个" in reply
    [reply] = await bot.say("复盘 本周", user="老板")
    assert "11月30日–12月6日" in reply and "赢单 0 个（较上周 ↓2）" in reply
