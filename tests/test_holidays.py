"""Holidays admins maintain (设置 假期 / 设置 调休): 2027, which chinesecalendar does not know, made right.

Today is 2026-12-07; chinesecalendar 1.11.0 covers 2004–2026, so from 2027-01-01 the stand-up falls back
to Monday–Friday — in the middle of 春节 — unless an admin enters the year.
"""

from __future__ import annotations

import asyncio
from datetime import date

import chinese_calendar
import pytest
from sqlalchemy import select

from schedules.scheduler import Scheduler
from storage.database import Database
from storage.models import AuditLog, CalendarDay
from storage.schedule_store import all_teams
from tests.conftest import PG_URL, pg_engine
from tests.schedule_helpers import outbox, plain, run_job


@pytest.fixture(autouse=True)
def in_december(clock) -> None:  # type: ignore[no-untyped-def]
    clock.set_local("2026-12-07 10:00")
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2027, 2, 8))  # precondition: the package really lacks 2027


async def enter_spring_festival_2027(bot) -> None:  # type: ignore[no-untyped-def]
    [holiday] = await bot.say("设置 假期 2027-02-06 到 2027-02-13 春节", user="老板")
    assert "✅" in holiday and "共 8 天" in holiday and "整个企业" in holiday
    [workday] = await bot.say("设置 调休 2027-02-14 春节调休", user="老板")
    assert "✅" in workday and "2027-02-14 周日" in workday


def standups(fired) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.slot for r in fired if r.job == "standup"]


# --- the stand-up in 2027, through the real tick --------------------------------------------------------------


async def test_spring_festival_2027_entered_by_an_admin_drives_the_stand_up(bot, db: Database, clock) -> None:
    await bot.say("认领 华为", user="张三")
    scheduler = Scheduler(db, clock=clock)
    await scheduler.tick()  # a running scheduler, its calendars read before the admin's change
    await enter_spring_festival_2027(bot)

    clock.set_local("2027-02-05 09:00:30")  # Friday before the break: an ordinary day
    assert standups(await scheduler.tick()) == ["2027-02-05"]
    clock.set_local("2027-02-08 09:00:30")  # Monday inside 春节
    assert standups(await scheduler.tick()) == []
    clock.set_local("2027-02-14 09:00:30")  # the make-up Sunday
    assert standups(await scheduler.tick()) == ["2027-02-14"]
    clock.set_local("2027-02-15 09:00:30")
    assert standups(await scheduler.tick()) == ["2027-02-15"]
    prompts = [r for r in await outbox(db) if r.dedup_key and r.dedup_key.startswith("standup:")]
    assert [r.dedup_key.rsplit(":", 1)[1] for r in prompts] == ["2027-02-05", "2027-02-14", "2027-02-15"]


async def test_without_entries_2027_falls_back_to_monday_to_friday(bot, db: Database, clock) -> None:
    await bot.say("认领 华为", user="张三")
    scheduler = Scheduler(db, clock=clock)
    clock.set_local("2027-02-08 09:00:30")
    assert standups(await scheduler.tick()) == ["2027-02-08"]
    clock.set_local("2027-02-14 09:00:30")
    assert standups(await scheduler.tick()) == []


async def test_an_entry_corrects_a_year_the_library_knows(bot, db: Database, clock) -> None:
    await bot.say("认领 华为", user="张三")
    [reply] = await bot.say("设置 假期 2026-12-31 公司年会", user="老板")  # a Thursday the package says is worked
    assert "✅" in reply
    clock.set_local("2026-12-31 09:00:30")
    assert standups(await Scheduler(db, clock=clock).tick()) == []


async def test_a_removed_entry_is_a_working_day_again_at_the_next_tick(bot, db: Database, clock) -> None:
    await bot.say("认领 华为", user="张三")
    await enter_spring_festival_2027(bot)
    scheduler = Scheduler(db, clock=clock)
    await scheduler.tick()
    loads = scheduler.calendars.loads
    await scheduler.tick()
    assert scheduler.calendars.loads == loads  # unchanged calendars are not read again
    [reply] = await bot.say("设置 假期 删除 2027-02-08", user="老板")
    assert "已删除 1 天" in reply and "春节" in reply
    clock.set_local("2027-02-08 09:00:30")
    assert standups(await scheduler.tick()) == ["2027-02-08"]
    assert scheduler.calendars.loads == loads + 1


async def test_a_weekdays_team_takes_the_holidays_but_not_the_make_up_days(bot, db: Database, clock) -> None:
    await bot.join("李四")
    await bot.say("设置 主管 @李四", user="老板")
    await bot.say("设置 日历 weekdays", user="李四")
    await enter_spring_festival_2027(bot)
    scheduler = Scheduler(db, clock=clock)
    clock.set_local("2027-02-08 09:00:30")
    assert standups(await scheduler.tick()) == []
    clock.set_local("2027-02-14 09:00:30")
    assert standups(await scheduler.tick()) == []


async def test_a_commands_working_days_count_the_organisations_own_days(bot, db: Database) -> None:
    from schedules.holidays import team_calendar
    from tests.schedule_helpers import team_id

    await enter_spring_festival_2027(bot)
    async with db.transaction() as store:
        [(org, team)] = await all_teams(store, await team_id(db))
        store.bind_team(org, team)
        calendar = await team_calendar(store)
    # February 2027: 20 weekdays, minus 5 in 春节, plus the make-up Sunday.
    assert calendar.working_days_between(date(2027, 2, 1), date(2027, 3, 1)) == 16


# --- chat: listing, replacing, removing, refusals -------------------------------------------------------------


async def test_the_listing_shows_the_entries_by_year_and_anyone_may_read_it(bot, db: Database) -> None:
    [empty] = await bot.say("设置 假期", user="张三")
    assert "还没有录入" in empty and "2027 年" in empty and "设置 假期" in empty  # the missing year is named
    await enter_spring_festival_2027(bot)
    [listing] = await bot.say("设置 假期", user="张三")
    assert "2027 年：" in listing
    assert "· 假期 2027-02-06 周六 到 2027-02-13 周六，共 8 天 春节 · 管理员" in listing
    assert "· 调休上班 2027-02-14 周日 春节调休 · 管理员" in listing
    assert "节假日库（chinesecalendar" not in listing  # 2027 is entered: no reminder
    [same] = await bot.say("/workday", user="张三")
    assert same == listing


async def test_a_correction_replaces_the_day_and_everything_is_audited(bot, db: Database) -> None:
    await enter_spring_festival_2027(bot)
    [reply] = await bot.say("设置 假期 2027-02-14", user="老板")
    assert "1 天原有的录入已被替换" in reply
    async with db.session() as s:
        days = {d.day: d.kind for d in (await s.execute(select(CalendarDay))).scalars()}
        actions = [a for (a,) in (await s.execute(select(AuditLog.action).order_by(AuditLog.id))).all()]
    assert days[date(2027, 2, 14)] == "holiday" and len(days) == 9
    assert actions.count("calendar_set") == 3
    await bot.say("设置 假期 删除 2027-02-06 到 2027-02-14", user="老板")
    async with db.session() as s:
        assert (await s.execute(select(CalendarDay))).scalars().all() == []
        assert (await s.execute(select(AuditLog).where(AuditLog.action == "calendar_remove"))).scalars().one()


async def test_a_lead_is_refused_in_chinese(bot) -> None:
    await bot.join("李四")
    await bot.say("设置 主管 @李四", user="老板")
    [reply] = await bot.say("设置 假期 2027-02-06 到 2027-02-13 春节", user="李四")
    assert "只有管理员可以使用" in reply and "主管" in reply
    [removal] = await bot.say("设置 调休 删除 2027-02-14", user="李四")
    assert "只有管理员可以使用" in removal


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("设置 假期 2027-02-30", "没有这一天"),
        ("设置 假期 下个月吧", "日期看不懂"),
        ("设置 假期 2027-02-13 到 2027-02-06", "早于开始日期"),
        ("设置 假期 2027-01-01 到 2027-06-30", "最多录入 60 天"),
        ("设置 假期 2027-02-06 2027-02-13", "请写「到」"),
        ("设置 调休 2027-02-14 一个特别特别特别长的调休上班日的名字", "名称最多"),
        ("设置 假期 删除", "要删除的日期"),
        ("设置 假期 删除 2027-03-01", "没有录入的假期或调休"),
    ],
)
async def test_bad_input_gets_a_chinese_refusal_with_an_example(bot, db: Database, text: str, says: str) -> None:
    [reply] = await bot.say(text, user="老板")
    assert says in reply and "Traceback" not in reply and "出错" not in reply
    if "删除 2027" not in text:
        assert "示例：设置" in reply
    async with db.session() as s:
        assert (await s.execute(select(CalendarDay))).scalars().all() == []


async def test_dates_in_the_usual_forms_are_read(bot) -> None:
    [reply] = await bot.say("设置 假期 2027年2月6日至2月13日 春节", user="老板")
    assert "2027-02-06 周六 到 2027-02-13 周六，共 8 天" in reply


# --- the December notice ------------------------------------------------------------------------------------


def notices(rows) -> list:  # type: ignore[no-untyped-def]
    return [r for r in rows if r.dedup_key and ":holidays:" in r.dedup_key]


async def test_admins_are_told_once_in_december_that_2027_is_missing(make_bot, db: Database, clock) -> None:
    first, second = make_bot(), make_bot(team="销售二组")
    await first.say("认领 华为", user="张三")
    await second.say("认领 腾讯", user="王五")
    clock.set_local("2026-12-07 18:00:30")
    one, other = Scheduler(db, clock=clock), Scheduler(db, clock=clock)  # two replicas
    await one.tick()
    await other.tick()
    rows = await outbox(db)
    assert len([r for r in rows if r.dedup_key and r.dedup_key.startswith("digest:")]) == 3  # 2 digests + 1 notice
    [notice] = notices(rows)
    text = plain(notice.body)
    assert "2027 年" in text and "设置 假期" in text and "salesbot calendar import" in text
    clock.set_local("2026-12-08 18:00:30")  # the next digest: told already
    await one.tick()
    assert len(notices(await outbox(db))) == 1


async def test_no_notice_when_the_year_is_entered_or_outside_december(bot, db: Database, clock) -> None:
    await bot.say("认领 华为", user="张三")
    clock.set_local("2026-11-27 18:00:30")
    assert (await run_job(db, "digest", clock.now)).pushes[-1].dedup is None
    await bot.say("设置 假期 2027-01-01 元旦", user="老板")
    clock.set_local("2026-12-07 18:00:30")
    await Scheduler(db, clock=clock).tick()
    assert notices(await outbox(db)) == []


async def test_a_digest_preview_claims_no_notice(bot, db: Database, clock) -> None:
    await bot.say("认领 华为", user="张三")
    clock.set_local("2026-12-07 18:00:30")
    preview = await run_job(db, "digest", clock.now, preview=True)
    assert any("2027 年" in p.message.text for p in preview.pushes)
    await Scheduler(db, clock=clock).tick()
    assert len(notices(await outbox(db))) == 1


@pytest.mark.parametrize("admin_by", ["salesbot admin add", "SALESBOT_ADMINS"])
async def test_on_wecom_the_notice_goes_to_the_admins_and_leads_by_direct_message(
    db: Database, clock, admin_by: str
) -> None:
    from schedules.firing import fire

    if admin_by == "SALESBOT_ADMINS":
        db.admin_entries = ("ww-corp:boss",)
    clock.set_local("2026-12-07 18:00:30")
    async with db.transaction() as store:
        org = await store.ensure_org("wecom", "ww-corp", clock.now)
        team = await store.ensure_team(org, "wrChat1", "销售一组", clock.now)
        store.bind_team(org, team)
        lead = await store.ensure_member(org, "lisi", "李四", clock.now)
        await store.set_team_role(lead, "lead", clock.now)
        boss = await store.ensure_member(org, "boss", "老板", clock.now)
        if admin_by == "salesbot admin add":
            await store.set_admin(org, boss, True, clock.now)
        team_id = team.id
    result = await fire(db, team_id, "digest", clock.now)
    destinations = [(p.destination["user_ids"], p.dedup) for p in result.pushes]
    assert destinations == [
        (["lisi"], None),  # the digest itself
        (["boss"], f"holidays:2027:member:{boss.id}"),
        (["lisi"], f"holidays:2027:member:{lead.id}"),
    ]
    clock.set_local("2026-12-08 18:00:30")
    assert len((await fire(db, team_id, "digest", clock.now)).pushes) == 1


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL tests need SALESBOT_TEST_PG_URL")
async def test_two_replicas_ticking_at_once_send_one_notice(make_bot, db: Database, clock, pg_schema, request) -> None:
    if request.node.callspec.params.get("db") != "postgresql":
        pytest.skip("needs two processes' worth of connections on PostgreSQL")
    for team, rep in (("销售一组", "张三"), ("销售二组", "王五"), ("销售三组", "赵六")):
        await make_bot(team=team).say("认领 " + team, user=rep)
    other = Database(pg_engine(pg_schema))  # a second replica: its own engine and pool
    try:
        clock.set_local("2026-12-07 18:00:10")
        await asyncio.gather(Scheduler(db, clock=clock).tick(), Scheduler(other, clock=clock).tick())
        assert len(notices(await outbox(db))) == 1
    finally:
        await other.close()
