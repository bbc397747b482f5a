"""Targets from year to week: split targets, who may change a target, the four kinds, past boards, bad periods.

Dates are in 2026, whose mainland holidays chinesecalendar knows: October has 18 working days (国庆 1–7,
make-up Saturday 10-10), November 21, December 23.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.models import AuditLog

APOLOGY = "抱歉，处理这条消息时出错了"


async def test_a_quarter_target_splits_into_months_and_weeks_by_working_days(bot, clock) -> None:
    clock.set_local("2026-10-09 10:00")  # Friday of the 国庆 week: working days 10-08, 10-09, 10-10
    [reply] = await bot.say("目标 团队 2026Q4 360万", user="老板")
    assert "已设定 团队 第4季度赢单目标：360万" in reply
    [october] = await bot.say("看板 10月", user="老板")
    assert "· 赢单 0 / 120万（拆分自 2026Q4）" in october
    [week] = await bot.say("看板 本周", user="老板")
    # 120万 × 3 working days of the week / 18 of October; two of them have passed by Friday evening.
    assert "第41周（10月5日起）看板" in week and "工作日 2/3 · 应完成 67%" in week
    assert "· 赢单 0 / 20万（拆分自 2026Q4） · 应 13.33万" in week
    [next_week] = await bot.say("看板 2026W42", user="老板")
    assert "· 赢单 0 / 33.33万（拆分自 2026Q4）" in next_week and "未开始 · 工作日 5 天" in next_week


async def test_a_year_target_reaches_a_month_and_a_week_across_a_month_end(bot, clock) -> None:
    await bot.join("张三")
    clock.set_local("2026-12-02 10:00")
    [reply] = await bot.say("目标 @张三 2026 1200万", user="老板")
    assert "已设定 @张三 2026年赢单目标：1200万" in reply
    [mine] = await bot.say("目标", user="张三")
    assert "🎯 你的12月目标" in mine and "· 赢单 0 / 100万（拆分自 2026）" in mine
    await bot.say("目标 @张三 12月 230万", user="老板")
    [mine] = await bot.say("目标", user="张三")
    assert "· 赢单 0 / 230万 · 应 20万" in mine  # explicit: no 拆分自; 2 of December's 23 working days
    # Week 49 is 11-30 … 12-06: 1 of November's 21 working days (100万 from the year) and 4 of December's 23.
    [week] = await bot.say("看板 上周", user="张三")
    assert "第48周" in week  # 11-23 … 11-29: all November, 5 of 21 days of 100万
    assert "· 赢单 0 / 23.81万（拆分自 2026）" in week
    [week] = await bot.say("看板 本周", user="张三")
    assert "· 赢单 0 / 44.76万（拆分自 2026、2026-12）" in week  # 100×1/21 + 230×4/23


async def test_a_rep_cannot_overwrite_what_their_lead_set_but_sets_their_own_elsewhere(bot, db) -> None:
    await bot.join("张三", "李四", "王五")
    await bot.say("设置 主管 @李四", user="老板")
    [reply] = await bot.say("目标 @张三 200万", user="李四")
    assert "已设定 @张三 11月赢单目标：200万" in reply
    [refused] = await bot.say("目标 10万", user="张三")
    assert "你的11月赢单目标 200万 是 李四（主管）设定的，只有主管或管理员可以修改" in refused
    [mine] = await bot.say("目标", user="张三")
    assert "· 赢单 0 / 200万" in mine
    [reply] = await bot.say("目标 本周 跟进 20", user="张三")  # no lead-set follow-up target this week
    assert "已设定 @张三 第48周（11月23日起）跟进目标：20 次" in reply
    [reply] = await bot.say("目标 跟进 25 本周", user="张三")
    assert "跟进目标：25 次（原为 20 次）" in reply
    [refused] = await bot.say("目标 @王五 10万", user="张三")
    assert "给同事或团队设目标需要主管或管理员" in refused
    [refused] = await bot.say("目标 团队 10万", user="张三")
    assert "给同事或团队设目标需要主管或管理员" in refused
    [reply] = await bot.say("目标 @张三 150万", user="李四")
    assert "（原为 200万）" in reply
    [reply] = await bot.say("目标 @张三 本周 跟进 30", user="老板")  # the admin overrides the rep's own
    assert "（原为 25 次）" in reply
    [refused] = await bot.say("目标 本周 跟进 10", user="张三")
    assert "老板（管理员）设定的" in refused
    async with db.session() as session:
        audited = (
            (await session.execute(select(AuditLog.after).where(AuditLog.action == "set_goal").order_by(AuditLog.id)))
            .scalars()
            .all()
        )
    assert [(a["period"], a["metric"], a["target"], a["role"]) for a in audited] == [
        ("2026-11", "won_amount", 200_000_000, "lead"),
        ("2026-W48", "followups", 20, "rep"),
        ("2026-W48", "followups", 25, "rep"),
        ("2026-11", "won_amount", 150_000_000, "lead"),
        ("2026-W48", "followups", 30, "admin"),
    ]


async def test_all_four_kinds_are_counted_from_what_the_rep_did(bot, clock) -> None:
    await bot.join("张三")
    clock.set_local("2026-11-02 10:00")
    await bot.say("目标 @张三 100万", user="老板")
    await bot.say("目标 @张三 赢单 3", user="老板")
    await bot.say("目标 @张三 本月 新客户 2", user="老板")
    [reply] = await bot.say("目标 跟进 @张三 5", user="老板")
    assert "11月跟进目标：5 次" in reply
    await bot.say("认领 华为", user="张三")
    await bot.say("认领 小米", user="张三")
    await bot.say("跟进 华为 拜访了 CIO", user="张三")
    await bot.say("跟进 小米 发了方案", user="张三")
    await bot.say("赢单 华为 40万", user="张三")
    await bot.say("赢单 小米 10万", user="张三")
    await bot.say("撤销赢单 小米", user="张三")  # undone in the same month: neither amount nor count
    clock.set_local("2026-11-20 10:00")
    [mine] = await bot.say("目标", user="张三")
    assert "· 赢单 40万 / 100万" in mine
    assert "· 赢单数 1 / 3" in mine
    assert "· 新客户 2 / 2" in mine
    assert "· 跟进 5 / 5" in mine  # two notes, and 赢单 (twice) and 撤销赢单 each write a follow-up record
    [board] = await bot.say("看板", user="老板")
    assert "团队 ███░░░░░ 40%" in board and "· 赢单 40万 / 100万（个人目标合计）" in board


async def test_a_past_months_board_shows_that_months_pipeline_not_todays(bot, clock) -> None:
    await bot.join("张三")
    clock.set_local("2026-10-20 10:00")
    await bot.say("认领 华为", user="张三")
    await bot.say("跟进 华为 报价已发 阶段:报价 金额:50万", user="张三")
    clock.set_local("2026-11-05 10:00")
    await bot.say("赢单 华为 50万", user="张三")
    await bot.say("认领 小米", user="张三")
    [october] = await bot.say("看板 10月", user="张三")
    assert "已结束" in october and "· 跟进中（期末） 1 · 50万（报价1）" in october  # as it stood on 31 October
    assert "赢单 0" in october
    [november] = await bot.say("看板", user="张三")
    assert "· 跟进中 1（线索1）" in november and "· 赢单 50万" in november


@pytest.mark.parametrize(
    ("command", "says", "example"),
    [
        ("看板 9999-12", "年份「9999-12」超出范围", "示例：看板 本季"),
        ("看板 2027Q9", "季度「2027Q9」不存在", "示例：看板 本季"),
        ("看板 13月", "月份「13月」不存在", "示例：看板 本季"),
        ("看板 下下下月", "期间「下下下月」看不懂", "示例：看板 本季"),
        ("目标 13月 5万", "月份「13月」不存在", "示例：目标 @张三 2027Q1 300万"),
        ("目标 2027-00 5万", "月份「2027-00」不存在", "示例：目标 @张三 2027Q1 300万"),
        ("目标 9999 5万", "年份「9999」超出范围", "示例：目标 @张三 2027Q1 300万"),
        ("目标 2027Q1 本月 5万", "一次只能写一个期间", "示例："),
        ("目标 本月 跟进 很多", "跟进目标要写个数", "示例："),
        ("目标 5万 6万", "目标只写一个数值", "示例："),
    ],
)
async def test_a_bad_period_or_value_is_refused_with_an_example(bot, command: str, says: str, example: str) -> None:
    [reply] = await bot.say(command, user="老板")
    assert says in reply and example in reply and APOLOGY not in reply


async def test_targets_for_a_year_a_quarter_and_a_week_read_naturally(bot) -> None:
    await bot.join("张三")
    [reply] = await bot.say("目标 团队 2027 5000万", user="老板")
    assert "已设定 团队 2027年赢单目标：5000万" in reply
    [reply] = await bot.say("目标 @张三 2027Q1 300万", user="老板")
    assert "已设定 @张三 2027年第1季度赢单目标：300万" in reply
    [reply] = await bot.say("目标 @张三 本周 跟进 20", user="老板")
    assert "已设定 @张三 第48周（11月23日起）跟进目标：20 次" in reply
    [week] = await bot.say("看板 本周", user="张三")  # Friday morning: the week is not over yet
    assert "工作日 5/5 · 应完成 100%" in week and "· 跟进 0 / 20 · 应 20" in week and "已结束" not in week
    [quarter] = await bot.say("看板 2027Q1", user="老板")
    assert "2027年第1季度看板" in quarter
    assert "· 赢单 0 / 1250万（拆分自 2027）" in quarter and "· 赢单 0 / 300万" in quarter
    [team] = await bot.say("目标 团队 2027", user="老板")
    assert "团队的2027年目标" in team and "· 赢单 0 / 5000万" in team


async def test_the_digest_lists_this_months_targets_split_from_the_quarter_like_the_board(bot, db, clock) -> None:
    from tests.schedule_helpers import run_job, texts

    await bot.join("张三")
    await bot.say("目标 @张三 本季 300万", user="老板")  # 2026Q4 → 100万 for November
    await bot.say("目标 @张三 本月 跟进 40", user="老板")
    await bot.say("认领 华为", user="张三")
    await bot.say("赢单 华为 52万", user="张三")
    clock.set_local("2026-11-27 18:00")
    [digest] = texts(await run_job(db, "digest", clock.now))
    assert "🎯 本月目标" in digest
    assert "· 张三 ▓▓▓▓▓░░░░░ 52% 52万/100万" in digest
    assert "· 张三 跟进 ░░░░░░░░░░ 2% 1/40" in digest  # the 赢单 record
    assert "· 团队合计 ▓▓▓▓▓░░░░░ 52% 52万/100万" in digest
