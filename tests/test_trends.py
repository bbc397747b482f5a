"""The weekly series behind the retro's chart and the board's trend: what happened, week by week."""

from __future__ import annotations

from datetime import date, timedelta

from storage.database import Database
from storage.goals import local_bounds
from storage.ledger import activity_by_member, period_wins
from storage.trends import WeekPoint, weekly_series


async def series(db: Database, now, weeks: int = 12) -> list[WeekPoint]:  # type: ignore[no-untyped-def]
    async with db.transaction() as store:
        org = await store.get_org("console", "console")
        store.bind_team(org, await store.get_team(org, "销售一组"))
        return await weekly_series(store, now, weeks)


async def _seed(bot, clock) -> None:  # type: ignore[no-untyped-def]
    clock.set_local("2026-11-16 09:00")  # Monday, two weeks before the last one
    await bot.say("认领 华为", user="张三")
    await bot.say("认领 小米", user="李四")
    await bot.say("跟进 华为 首次拜访", user="张三")
    await bot.say("赢单 华为 50万", user="张三")
    clock.set_local("2026-11-22 23:59")  # Sunday night: still that week
    await bot.say("跟进 小米 电话", user="李四")
    await bot.say("求助 需要报价模板", user="李四")
    clock.set_local("2026-11-23 00:00")  # Monday midnight (Shanghai): the next week
    await bot.say("接 #1", user="张三")
    await bot.say("撤销赢单 华为", user="张三")  # takes the win back in THIS week, not the week it was won
    clock.set_local("2026-11-30 10:00")  # the last week
    await bot.say("赢单 小米 200万", user="李四")
    await bot.say("撤销赢单 小米", user="李四")
    await bot.say("跟进 小米 重新谈 金额:900万", user="李四")
    await bot.say("认领 京东", user="张三")
    await bot.say("赢单 京东 30万", user="张三")


async def test_each_week_counts_what_happened_in_it_at_local_midnight(bot, db: Database, clock) -> None:
    await _seed(bot, clock)
    points = await series(db, clock.set_local("2026-12-04 17:00"), weeks=4)
    assert [p.start for p in points] == [date(2026, 11, 9), date(2026, 11, 16), date(2026, 11, 23), date(2026, 11, 30)]
    first, won, unwon, last = points
    assert first == WeekPoint(date(2026, 11, 9))
    assert (won.wins, won.won_fen, won.new_customers, won.help_taken) == (1, 50_000_000, 2, 0)
    assert won.followups == 3  # 跟进 twice, and 赢单 writes its follow-up record
    # The un-win lands in the week it happened: that week nets −1 and −50万; the week of the win stays closed.
    assert (unwon.wins, unwon.won_fen, unwon.help_taken, unwon.followups) == (-1, -50_000_000, 1, 1)
    # 赢单 小米 200万, 撤销赢单 小米, 跟进 … 金额:900万 in one week count nothing; 京东 30万 counts.
    assert (last.wins, last.won_fen, last.new_customers) == (1, 30_000_000, 1)
    assert last.followups == 4  # 赢单, 撤销赢单 and 赢单 write follow-up records too


async def test_twelve_weeks_by_default_this_week_last(bot, db: Database, clock) -> None:
    await _seed(bot, clock)
    points = await series(db, clock.set_local("2026-12-06 23:00"))  # Sunday: the week of Nov 30 still
    assert len(points) == 12 and points[-1].start == date(2026, 11, 30) and points[0].start == date(2026, 9, 14)
    assert sum(p.wins for p in points) == 1 and sum(p.won_fen for p in points) == 30_000_000
    assert sum(p.new_customers for p in points) == 3


async def test_every_week_agrees_with_the_ledgers_period_numbers(bot, db: Database, clock) -> None:
    """The batched series and storage.ledger (what the digest, retro and 看板 read) give the same numbers."""
    await _seed(bot, clock)
    clock.set_local("2026-12-01 11:00")
    await bot.join("王五")
    await bot.say("认领 字节", user="王五")
    await bot.say("赢单 字节 40万 分成:王五60,张三40", user="王五")
    now = clock.set_local("2026-12-06 20:00")
    points = await series(db, now, weeks=6)
    async with db.transaction() as store:
        org = await store.get_org("console", "console")
        store.bind_team(org, await store.get_team(org, "销售一组"))
        for point in points:
            start, end = local_bounds(store, point.start, point.start + timedelta(days=7))
            wins = await period_wins(store, start, end)
            activity = await activity_by_member(store, start, end)
            assert (point.wins, point.won_fen) == (wins.count, wins.fen), point
            assert point.won_fen == sum(credit.fen for credit in wins.by_member.values())
            assert point.followups == sum(a.followups for a in activity.values()), point
            assert point.new_customers == sum(a.new_customers for a in activity.values()), point
    assert [p.wins for p in points[-3:]] == [1, -1, 2]
