"""When pushes fire: working days (holidays, 调休), time zones, exactly once, catch-up after downtime."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, date, datetime

import pytest

from schedules.jobs import JOBS, TeamSchedule
from schedules.scheduler import Scheduler
from storage.database import Database
from tests.conftest import PG_URL, pg_engine
from tests.schedule_helpers import outbox, plain, run_job

UTC = UTC


def cn(**settings) -> TeamSchedule:  # type: ignore[no-untyped-def]
    return TeamSchedule.of(settings, "Asia/Shanghai")


def test_standup_skips_a_public_holiday_and_fires_on_a_make_up_saturday() -> None:
    standup = JOBS["standup"]
    assert standup.slot_on(date(2026, 10, 1), cn()) is None  # 国庆节, a Thursday
    assert standup.slot_on(date(2026, 2, 16), cn()) is None  # 春节 Monday
    saturday = standup.slot_on(date(2026, 2, 14), cn())  # 调休 working Saturday
    assert saturday is not None and saturday.due_at == datetime(2026, 2, 14, 1, 0, tzinfo=UTC)
    # A team on plain Mon–Fri: the other way round.
    assert standup.slot_on(date(2026, 2, 14), cn(calendar="weekdays")) is None
    assert standup.slot_on(date(2026, 10, 1), cn(calendar="weekdays")) is not None


def test_firing_times_are_in_the_organisations_zone_even_on_a_utc_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        slot = JOBS["standup"].next_slot(datetime(2026, 11, 26, 12, 0, tzinfo=UTC), cn())
        assert slot is not None and slot.key == "2026-11-27"
        assert slot.due_at == datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # 09:00 Asia/Shanghai
        new_york = TeamSchedule.of({}, "America/New_York")
        ny = JOBS["digest"].next_slot(datetime(2026, 11, 26, 12, 0, tzinfo=UTC), new_york)
        assert ny is not None and ny.due_at == datetime(2026, 11, 26, 23, 0, tzinfo=UTC)  # 18:00 EST
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_retro_is_weekly_on_the_chosen_day_and_keyed_by_iso_week() -> None:
    retro = JOBS["retro"]
    schedule = cn(retro_weekday=3, retro_time="16:30")
    slot = retro.next_slot(datetime(2026, 11, 23, 0, 0, tzinfo=UTC), schedule)
    assert slot is not None and slot.day == date(2026, 11, 26) and slot.key == "2026-W48"
    assert slot.due_at == datetime(2026, 11, 26, 8, 30, tzinfo=UTC)


async def test_a_tick_fires_a_due_slot_once_and_never_again(bot, db: Database, clock) -> None:
    await bot.say("认领 华为", user="张三")
    clock.set_local("2026-11-27 09:00:30")
    scheduler = Scheduler(db, clock=clock)
    fired = await scheduler.tick()
    assert [r.job for r in fired] == ["standup"]
    assert [r.job for r in await scheduler.tick()] == []
    restarted = Scheduler(db, clock=clock)  # a restart inside the slot: the database remembers
    clock.advance(minutes=5)
    assert [r.job for r in await restarted.tick()] == []
    rows = await outbox(db)
    assert [r.dedup_key for r in rows] == [f"standup:{rows[0].team_id}:2026-11-27"]
    assert rows[0].destination == {"kind": "team", "team_id": rows[0].team_id, "chat_id": "销售一组"}
    assert "晨会开始" in plain(rows[0].body)


async def test_nothing_fires_on_a_holiday(bot, db: Database, clock) -> None:
    await bot.say("认领 华为", user="张三")
    clock.set_local("2026-10-01 09:05")
    fired = await Scheduler(db, clock=clock).tick()
    assert "standup" not in [r.job for r in fired]


async def test_a_make_up_saturday_gets_its_stand_up(bot, db: Database, clock) -> None:
    clock.set_local("2026-02-13 12:00")
    await bot.say("认领 华为", user="张三")
    clock.set_local("2026-02-14 09:01")
    fired = await Scheduler(db, clock=clock).tick()
    assert "standup" in [r.job for r in fired]


async def test_restart_inside_the_grace_period_catches_up(bot, db: Database, clock) -> None:
    await bot.say("认领 华为", user="张三")
    clock.set_local("2026-11-27 09:29")  # the bot was down at 09:00, back 29 minutes later
    fired = await Scheduler(db, clock=clock).tick()
    assert "standup" in [r.job for r in fired]


async def test_restart_outside_the_grace_period_skips_and_says_why(bot, db: Database, clock, caplog) -> None:
    await bot.say("认领 华为", user="张三")
    clock.set_local("2026-11-27 09:31")
    with caplog.at_level(logging.WARNING, logger="salesbot.scheduler"):
        fired = await Scheduler(db, clock=clock).tick()
    assert "standup" not in [r.job for r in fired]
    assert any("skipped standup" in r.getMessage() and "grace" in r.getMessage() for r in caplog.records)
    assert not [r for r in await outbox(db) if r.dedup_key and r.dedup_key.startswith("standup:")]
    # …and the next slot still fires normally.
    clock.set_local("2026-11-30 09:00")
    assert "standup" in [r.job for r in await Scheduler(db, clock=clock).tick()]


async def test_a_changed_time_takes_effect_without_a_restart_and_a_day_is_sent_once(bot, db: Database, clock) -> None:
    await bot.join("李四")  # they speak in the group before they are @-ed
    clock.set_local("2026-11-27 08:00")
    await bot.say("设置 主管 @李四", user="老板")
    [reply] = await bot.say("设置 晨会 9点半", user="李四")
    assert "09:30" in reply
    scheduler = Scheduler(db, clock=clock)
    clock.set_local("2026-11-27 09:05")
    assert "standup" not in [r.job for r in await scheduler.tick()]
    clock.set_local("2026-11-27 09:31")
    assert "standup" in [r.job for r in await scheduler.tick()]
    await bot.say("设置 晨会 10:00", user="李四")
    clock.set_local("2026-11-27 10:01")
    assert "standup" not in [r.job for r in await scheduler.tick()]  # same day: already sent


async def test_a_rep_cannot_change_the_schedule(bot) -> None:
    [reply] = await bot.say("设置 晨会 10:00", user="张三")
    assert "只有主管" in reply


async def test_jobs_run_uses_the_same_key_unless_forced(bot, db: Database, clock) -> None:
    await bot.say("认领 华为", user="张三")
    first = await run_job(db, "standup", clock.now)
    again = await run_job(db, "standup", clock.now)
    forced = await run_job(db, "standup", clock.now, force=True)
    assert (first.status, again.status, forced.status) == ("sent", "already", "sent")
    assert len(await outbox(db)) == 2


async def test_print_preview_sends_and_changes_nothing(bot, db: Database, clock) -> None:
    await bot.say("认领 华为", user="张三")
    clock.advance(days=31)
    preview = await run_job(db, "reclaim", clock.now, preview=True)
    assert preview.status == "preview" and "退回公海" in preview.pushes[0].message.text
    assert await outbox(db) == []
    assert (await run_job(db, "reclaim", clock.now)).status == "sent"  # the preview claimed nothing


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL tests need SALESBOT_TEST_PG_URL")
async def test_two_schedulers_on_one_postgresql_database_push_once(
    bot, db: Database, clock, pg_schema, request
) -> None:
    if request.node.callspec.params.get("db") != "postgresql":
        pytest.skip("needs two processes' worth of connections on PostgreSQL")
    await bot.say("认领 华为", user="张三")
    other = Database(pg_engine(pg_schema))  # a second replica: its own engine and pool
    try:
        clock.set_local("2026-11-27 09:00:10")
        for _ in range(3):
            first, second = Scheduler(db, clock=clock), Scheduler(other, clock=clock)
            await asyncio.gather(first.tick(), second.tick())
        rows = [r for r in await outbox(db) if r.dedup_key and r.dedup_key.startswith("standup:")]
        assert len(rows) == 1
    finally:
        await other.close()
