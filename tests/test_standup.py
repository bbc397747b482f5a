"""The stand-up: answering, replacing, leave, the prompt and the summary."""

from __future__ import annotations

from storage.database import Database
from tests.schedule_helpers import run_job, texts


async def test_an_answer_is_recorded_and_a_second_one_replaces_it(bot, db: Database, clock) -> None:
    clock.set_local("2026-11-27 09:10")
    [first] = await bot.say("晨会 拜访华为", user="张三")
    assert "已记录" in first
    [second] = await bot.say("/standup 拜访华为和腾讯 阻碍：报价审批慢", user="张三")
    assert "已更新" in second and "报价审批慢" in second
    [summary] = texts(await run_job(db, "standup_summary", clock.now))
    assert "✅ 张三：拜访华为和腾讯" in summary and "拜访华为\n" not in summary
    assert "🚧" in summary and "张三：报价审批慢" in summary


async def test_the_summary_lists_who_has_not_answered_and_mentions_only_when_turned_on(
    bot, db: Database, clock
) -> None:
    clock.set_local("2026-11-27 09:10")
    await bot.say("晨会 打电话", user="张三")
    await bot.say("认领 腾讯", user="李四")
    [summary] = texts(await run_job(db, "standup_summary", clock.now))
    assert "已回复 1/2 人" in summary and "未回复：李四" in summary and "@李四" not in summary
    await bot.say("设置 点名 开", user="老板")
    [summary] = texts(await run_job(db, "standup_summary", clock.now, force=True))
    assert "未回复：@李四" in summary


async def test_members_on_leave_are_neither_prompted_nor_missing(bot, db: Database, clock) -> None:
    clock.set_local("2026-11-26 17:00")
    await bot.say("认领 腾讯", user="李四")
    [reply] = await bot.say("请假 到 明天", user="王五")
    assert "2026-11-27" in reply
    clock.set_local("2026-11-27 09:00")
    [prompt] = texts(await run_job(db, "standup", clock.now))
    assert "· 王五" not in prompt and "请假：王五" in prompt and "· 李四" in prompt
    [summary] = texts(await run_job(db, "standup_summary", clock.now))
    assert "未回复：李四" in summary and "王五" not in summary.split("请假")[0]
    clock.set_local("2026-11-30 09:00")  # leave ended on Friday
    [prompt] = texts(await run_job(db, "standup", clock.now))
    assert "· 王五" in prompt


async def test_back_from_leave_ends_an_open_ended_leave(bot, db: Database, clock) -> None:
    clock.set_local("2026-11-25 09:00")
    [reply] = await bot.say("/away", user="王五")
    assert "销假" in reply
    clock.set_local("2026-11-27 08:00")
    [prompt] = texts(await run_job(db, "standup", clock.now))
    assert "请假：王五" in prompt
    [reply] = await bot.say("销假", user="王五")
    assert "欢迎回来" in reply
    [prompt] = texts(await run_job(db, "standup", clock.now, force=True))
    assert "· 王五" in prompt
    [reply] = await bot.say("/back", user="王五")
    assert "没有在请假" in reply


async def test_the_prompt_lists_todays_follow_ups_and_open_help_requests(bot, db: Database, clock) -> None:
    clock.set_local("2026-11-26 15:00")
    await bot.say("认领 华为", user="张三")
    await bot.say("跟进 华为 约了明天拜访 下次:明天", user="张三")
    await bot.say("求助 需要一份报价模板", user="李四")
    await bot.say("接 #1", user="张三")
    clock.set_local("2026-11-27 09:00")
    [prompt] = texts(await run_job(db, "standup", clock.now))
    assert "☀️ 早上好，销售一组" in prompt and "11月27日 周五" in prompt
    assert "· 张三：今日跟进：华为；求助：帮忙 #1" in prompt
    assert "· 李四：求助：#1 需要一份报价模板（处理中）" in prompt


async def test_follow_up_reminders_mention_the_owner_on_the_day(bot, db: Database, clock) -> None:
    clock.set_local("2026-11-26 15:00")
    await bot.say("认领 华为", user="张三")
    await bot.say("跟进 华为 约了周六拜访 下次:2026-11-28", user="张三")
    clock.set_local("2026-11-27 09:00")
    assert (await run_job(db, "reminders", clock.now)).pushes == []
    clock.set_local("2026-11-28 09:00")
    [text] = texts(await run_job(db, "reminders", clock.now))
    assert "@张三：华为" in text
    message = (await run_job(db, "reminders", clock.now, preview=True)).pushes[0].message
    assert message.mention_ids == ["张三"]


async def test_standup_needs_a_plan(bot) -> None:
    [reply] = await bot.say("晨会", user="张三")
    assert "请写上今天的计划" in reply and "示例" in reply


