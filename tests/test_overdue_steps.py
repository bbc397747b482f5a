"""A 下次 date that has passed stays in the stand-up prompt and the reminders until it is dealt with."""

from __future__ import annotations

from storage.database import Database
from tests.schedule_helpers import run_job, texts


async def _overdue_huawei(bot, clock) -> None:  # type: ignore[no-untyped-def]
    clock.set_local("2026-11-24 15:00")  # a Tuesday
    await bot.say("认领 北京华为技术有限公司", user="张三")
    await bot.say("跟进 华为 约了明天拜访 下次:明天", user="张三")


async def test_an_overdue_step_is_in_the_next_stand_up_with_its_days(bot, db: Database, clock) -> None:
    await _overdue_huawei(bot, clock)
    clock.set_local("2026-11-25 09:00")
    [prompt] = texts(await run_job(db, "standup", clock.now))
    assert "今日跟进：北京华为技术有限公司" in prompt and "逾期" not in prompt
    clock.set_local("2026-11-27 09:00")
    [prompt] = texts(await run_job(db, "standup", clock.now))
    assert "北京华为技术有限公司（逾期 2 天）" in prompt


async def test_an_overdue_step_stays_in_the_reminders_until_a_follow_up_is_posted(bot, db: Database, clock) -> None:
    await _overdue_huawei(bot, clock)
    clock.set_local("2026-11-26 09:00")
    [text] = texts(await run_job(db, "reminders", clock.now))
    assert "@张三：北京华为技术有限公司（逾期 1 天）" in text
    clock.set_local("2026-11-26 16:00")
    await bot.say("跟进 华为 拜访完了，客户要报价", user="张三")
    clock.set_local("2026-11-27 09:00")
    assert (await run_job(db, "reminders", clock.now)).pushes == []


async def test_moving_the_date_ends_the_overdue_line(bot, db: Database, clock) -> None:
    await _overdue_huawei(bot, clock)
    clock.set_local("2026-11-26 08:00")
    await bot.say("跟进 华为 客户改期 下次:2026-11-30", user="张三")
    clock.set_local("2026-11-27 09:00")
    [prompt] = texts(await run_job(db, "standup", clock.now))
    assert "华为" not in prompt
    clock.set_local("2026-11-30 09:00")
    [text] = texts(await run_job(db, "reminders", clock.now))
    assert "@张三：北京华为技术有限公司" in text and "逾期" not in text
