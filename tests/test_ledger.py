"""The ledger of period numbers (storage.ledger): what a team did in a period, net of reversals, read
after driving the bot like a user — wins, un-wins, losses, credits, activity and the past pipeline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from storage import ledger
from storage.database import Database
from storage.goals import local_bounds, month_bounds
from storage.models import Member
from storage.store import Store


async def read(db: Database, fn: Callable[[Store], Awaitable[Any]]) -> Any:
    """Run `fn(store)` on the console team's store (the ledger reads one team)."""
    async with db.transaction() as store:
        org = await store.get_org("console", "console")
        assert org is not None
        team = await store.get_team(org, "销售一组")
        assert team is not None
        store.bind_team(org, team)
        return await fn(store)


async def member_ids(db: Database) -> dict[str, int]:
    async with db.session() as session:
        return {name: id_ for id_, name in (await session.execute(select(Member.id, Member.name))).all()}


async def week(db: Database, first: str, last_exclusive: str, fn):  # type: ignore[no-untyped-def]
    from datetime import date

    async def run(store: Store):  # type: ignore[no-untyped-def]
        start, end = local_bounds(store, date.fromisoformat(first), date.fromisoformat(last_exclusive))
        return await fn(store, start, end)

    return await read(db, run)


async def test_a_win_undone_in_the_same_week_counts_nothing_and_the_new_amount_stays_on_the_open_deal(
    bot, db, clock
) -> None:
    clock.set_local("2026-11-23 10:00")  # Monday
    await bot.say("认领 小米", user="张三")
    await bot.say("赢单 小米 200万", user="张三")
    await bot.say("撤销赢单 小米", user="张三")
    await bot.say("跟进 小米 重新谈 金额:900万", user="张三")
    wins = await week(db, "2026-11-23", "2026-11-30", ledger.period_wins)
    assert (wins.count, wins.fen, wins.deals) == (0, 0, [])
    ids = await member_ids(db)
    assert wins.by_member[ids["张三"]].fen == 0 and wins.by_member[ids["张三"]].count == 0
    clock.set_local("2026-11-27 10:00")
    pipeline = await read(db, lambda store: ledger.pipeline_at(store, clock.now))
    assert pipeline == {"谈判": ledger.StageTotal(1, 900_000_000)}


async def test_wins_losses_and_activity_of_a_week(bot, db, clock) -> None:
    await bot.join("李四")
    clock.set_local("2026-11-24 10:00")
    await bot.say("认领 华为", user="张三")
    await bot.say("认领 腾讯", user="张三")
    await bot.say("认领 百度", user="李四")
    await bot.say("跟进 华为 拜访 阶段:初访 金额:50万", user="张三")
    await bot.say("跟进 腾讯 报价 阶段:报价", user="张三")
    await bot.say("跟进 腾讯 谈判 阶段:赢单 金额:30万", user="张三")  # the 跟进 path to a win
    await bot.say("赢单 华为 120万", user="张三")
    await bot.say("输单 百度 预算被砍", user="李四")
    wins = await week(db, "2026-11-23", "2026-11-30", ledger.period_wins)
    ids = await member_ids(db)
    assert (wins.count, wins.fen) == (2, 150_000_000)
    assert [(d.customer, d.deal, d.fen, d.owner_id) for d in wins.deals] == [
        ("腾讯", "首单", 30_000_000, ids["张三"]),
        ("华为", "首单", 120_000_000, ids["张三"]),
    ]
    assert wins.by_member == {ids["张三"]: ledger.Credit(150_000_000, 2)}
    assert [c.share_bp for d in wins.deals for c in d.credits] == [10000, 10000]
    [lost] = await week(db, "2026-11-23", "2026-11-30", ledger.period_losses)
    assert (lost.customer, lost.reason, lost.owner_id) == ("百度", "预算被砍", ids["李四"])
    activity = await week(db, "2026-11-23", "2026-11-30", ledger.activity_by_member)
    assert activity[ids["张三"]] == ledger.Activity(followups=4, new_customers=2)  # 赢单 is a follow-up too
    assert activity[ids["李四"]] == ledger.Activity(followups=1, new_customers=1)
    assert (await week(db, "2026-11-30", "2026-12-07", ledger.period_wins)).count == 0


async def test_an_unwin_in_a_later_month_leaves_the_month_of_the_win_unchanged(bot, db, clock) -> None:
    clock.set_local("2026-11-20 10:00")
    await bot.say("认领 小米", user="张三")
    await bot.say("赢单 小米 200万", user="张三")
    clock.set_local("2026-12-02 10:00")
    await bot.say("撤销赢单 小米", user="张三")
    ids = await member_ids(db)

    async def month(name: str) -> ledger.PeriodWins:
        async def run(store: Store) -> ledger.PeriodWins:
            return await ledger.period_wins(store, *month_bounds(store, name))

        return await read(db, run)

    november, december = await month("2026-11"), await month("2026-12")
    assert (november.count, november.fen) == (1, 200_000_000)
    assert november.by_member[ids["张三"]] == ledger.Credit(200_000_000, 1)
    assert (december.count, december.fen) == (-1, -200_000_000)
    assert december.by_member[ids["张三"]] == ledger.Credit(-200_000_000, -1)
    [reversal] = december.reversals
    assert (reversal.customer, reversal.fen) == ("小米", -200_000_000)


async def test_the_pipeline_at_a_past_moment_is_rebuilt_from_the_deals_history(bot, db, clock) -> None:
    clock.set_local("2026-11-02 10:00")
    await bot.say("认领 华为", user="张三")
    await bot.say("跟进 华为 拜访 阶段:初访 金额:50万", user="张三")
    await bot.say("认领 腾讯", user="张三")
    clock.set_local("2026-11-10 10:00")
    then = clock.now
    await bot.say("跟进 华为 报价 阶段:报价 金额:80万", user="张三")
    await bot.say("输单 腾讯 没预算", user="张三")
    await bot.say("认领 百度", user="张三")
    await bot.say("赢单 华为", user="张三")
    past = await read(db, lambda store: ledger.pipeline_at(store, then))
    assert past == {"初访": ledger.StageTotal(1, 50_000_000), "线索": ledger.StageTotal(1, 0)}
    clock.set_local("2026-11-11 10:00")
    current = await read(db, lambda store: ledger.pipeline_at(store, clock.now))
    assert current == {"线索": ledger.StageTotal(1, 0)}  # 百度 only
    before_all = await read(db, lambda store: ledger.pipeline_at(store, datetime.fromisoformat("2026-10-01T00:00Z")))
    assert before_all == {}


async def _win_then_hand_over(bot, clock) -> None:  # type: ignore[no-untyped-def]
    """张三 wins 小米 for 200万 on 24 November and hands the customer to 李四."""
    await bot.join("李四")
    clock.set_local("2026-11-24 10:00")
    await bot.say("认领 小米", user="张三")
    await bot.say("赢单 小米 200万", user="张三")
    [handed] = await bot.say("转交 小米 @李四", user="张三")
    assert "李四" in handed


async def test_a_win_undone_after_a_handover_takes_the_count_back_from_who_had_the_win(bot, db, clock) -> None:
    await _win_then_hand_over(bot, clock)
    await bot.say("撤销赢单 小米", user="李四")
    wins = await week(db, "2026-11-23", "2026-11-30", ledger.period_wins)
    ids = await member_ids(db)
    assert (wins.count, wins.fen, wins.deals) == (0, 0, [])
    assert wins.by_member == {ids["张三"]: ledger.Credit(0, 0)}  # nothing ever counted for 李四


async def test_a_handed_over_win_undone_next_month_takes_the_count_from_who_had_the_win(bot, db, clock) -> None:
    await _win_then_hand_over(bot, clock)
    clock.set_local("2026-12-02 10:00")
    await bot.say("撤销赢单 小米", user="李四")
    ids = await member_ids(db)
    december = await week(db, "2026-12-01", "2027-01-01", ledger.period_wins)
    assert december.by_member == {ids["张三"]: ledger.Credit(-200_000_000, -1)}
