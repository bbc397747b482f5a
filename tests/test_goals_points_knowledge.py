"""Goals and the board, the collaboration-points ledger, team knowledge search."""

from __future__ import annotations

from sqlalchemy import select

from handlers.goals import progress_bar
from storage.models import PointsEntry


async def _ledger(db) -> list[tuple[str, int, str]]:
    from storage.models import Member

    async with db.session() as s:
        rows = await s.execute(
            select(Member.name, PointsEntry.points, PointsEntry.reason)
            .join(Member, Member.id == PointsEntry.member_id)
            .order_by(PointsEntry.id)
        )
        return [tuple(r) for r in rows.all()]


# ------------------------------------------------------------------ goals
def test_progress_bar_fills_by_whole_blocks_and_shows_percent() -> None:
    assert progress_bar(0.52) == "████░░░░ 52%"
    assert progress_bar(0) == "░░░░░░░░ 0%"
    assert progress_bar(1.3) == "████████ 130%"
    assert progress_bar(0.99) == "███████░ 99%"


async def test_the_board_shows_won_amount_against_target_for_a_seeded_month(bot, clock) -> None:
    await bot.join("张三", "李四")  # they speak in the group before they are @-ed
    clock.set_local("2026-10-20 10:00")
    await bot.say("认领 阿里巴巴", user="张三")
    await bot.say("赢单 阿里 30万", user="张三")  # October: not part of November's numbers
    clock.set_local("2026-11-03 10:00")
    [reply] = await bot.say("目标 @张三 100万", user="老板")
    assert "已设定 @张三 11月赢单目标：100万" in reply
    await bot.say("目标 @李四 50万", user="老板")
    await bot.say("目标 团队 200万", user="老板")
    await bot.say("认领 北京华为技术有限公司", user="张三")
    await bot.say("认领 腾讯科技", user="张三")
    await bot.say("认领 小米科技", user="李四")
    await bot.say("认领 字节跳动", user="张三")
    clock.set_local("2026-11-10 10:00")
    await bot.say("赢单 华为 40万", user="张三")
    await bot.say("赢单 腾讯 12万", user="张三")
    await bot.say("跟进 字节 方案已发 阶段:报价", user="张三")
    clock.set_local("2026-11-12 10:00")
    [board] = await bot.say("看板", user="张三")
    lines = board.splitlines()
    assert lines[0] == "📊 销售一组 · 11月看板"
    assert "团队 ██░░░░░░ 26%" in board and "· 赢单 52万 / 200万" in board
    assert "👤 张三 ████░░░░ 52%" in board and "· 赢单 52万 / 100万" in board
    assert "👤 李四 ░░░░░░░░ 0%" in board and "· 赢单 0 / 50万" in board
    assert "工作日 9/21 · 应完成 43%" in board  # 11-12 is the 9th of November's 21 working days
    assert "· 赢单数 2 · 新客户 3 · 跟进 3\n· 跟进中 1（报价1）" in board
    assert "|" not in board and all(len(line) <= 32 for line in lines)
    [october] = await bot.say("看板 10月", user="张三")
    assert "10月看板" in october and "· 赢单 30万" in october and "52万" not in october


async def test_a_rep_sets_their_own_goal_but_not_a_colleagues(bot) -> None:
    await bot.join("张三")  # they speak in the group before they are @-ed
    [reply] = await bot.say("目标 30万", user="李四")
    assert "@李四" in reply and "30万" in reply
    [reply] = await bot.say("目标 @张三 30万", user="李四")
    assert "主管或管理员" in reply
    [reply] = await bot.say("/goal @李四 新客户 10 12月", user="老板")
    assert "12月新客户目标：10 个" in reply
    [reply] = await bot.say("目标 40万", user="李四")
    assert "原为 30万" in reply
    [reply] = await bot.say("目标", user="李四")
    assert "你的11月目标" in reply and "· 赢单 0 / 40万" in reply
    [reply] = await bot.say("看板 13月", user="李四")
    assert "不存在" in reply and "示例：看板 本季" in reply


async def test_goal_progress_for_the_digest_lists_reps_then_the_team(bot, db, clock) -> None:
    from datetime import date

    from handlers.periods import month_of
    from handlers.targets import period_progress

    await bot.join("张三")  # they speak in the group before they are @-ed
    await bot.say("目标 @张三 100万", user="老板")
    await bot.say("认领 华为", user="张三")
    await bot.say("赢单 华为 52万", user="张三")
    async with db.transaction() as store:
        org = await store.get_org("console", "console")
        store.bind_team(org, await store.get_team(org, "销售一组"))
        progress = await period_progress(store, month_of(2026, 11), date(2026, 11, 30))
    [row] = progress.rows
    won = row.metrics["won_amount"]
    assert row.member.name == "张三" and won.actual == 52_000_000 and round(won.ratio, 2) == 0.52
    assert progress.team.member is None and progress.team.metrics["won_amount"].target.summed


# ----------------------------------------------------------------- points
async def test_help_points_take_plus_one_resolve_plus_three_reopen_minus_three(bot, db) -> None:
    await bot.say("求助 需要一份报价模板", user="张三")
    [reply] = await bot.say("接 #1", user="李四")
    assert "协作积分 +1" in reply
    [reply] = await bot.say("解决 #1 已发", user="张三")
    assert "感谢 @李四" in reply and "+3" in reply
    [reply] = await bot.say("重开 #1 模板版本不对", user="张三")
    assert "已重开" in reply and "李四 协作积分 -3" in reply
    assert await _ledger(db) == [("李四", 1, "take"), ("李四", 3, "resolve"), ("李四", -3, "reopen")]
    [reply] = await bot.say("解决 #1", user="李四")
    assert "已解决" in reply
    [rank] = await bot.say("排行", user="王五")
    assert "🥇 李四 4 分" in rank


async def test_reopen_is_for_the_requester_or_a_lead_and_only_once_reverses(bot, db) -> None:
    await bot.say("求助 需要案例", user="张三")
    await bot.say("接 #1", user="李四")
    await bot.say("解决 #1", user="李四")
    [reply] = await bot.say("重开 #1", user="王五")
    assert "只有求助人或主管" in reply
    await bot.say("重开 #1", user="老板")
    [reply] = await bot.say("重开 #1", user="老板")
    assert "还没有解决" in reply
    assert sum(p for _, p, _ in await _ledger(db)) == 1


async def test_a_won_deal_gives_collaborators_five_and_setting_it_back_takes_them_away(bot, db) -> None:
    await bot.join("李四")  # they speak in the group before they are @-ed
    await bot.say("认领 华为", user="张三")
    await bot.say("协作 华为 @李四", user="张三")
    [reply] = await bot.say("赢单 华为 100万", user="张三")
    assert "赢单" in reply and "李四 协作积分各 +5" in reply
    [reply] = await bot.say("撤销赢单 华为", user="王五")
    assert "负责人或主管" in reply
    [reply] = await bot.say("撤销赢单 华为", user="张三")
    assert "退回「谈判」" in reply and "李四 协作积分 -5" in reply
    [reply] = await bot.say("客户 华为", user="张三")
    assert "谈判" in reply
    await bot.say("跟进 华为 签了 阶段:赢单", user="张三")
    assert await _ledger(db) == [("李四", 5, "won"), ("李四", -5, "won_revert"), ("李四", 5, "won")]


async def test_admins_configure_point_values(bot, db) -> None:
    [reply] = await bot.say("设置 积分 接单 2", user="张三")
    assert "管理员" in reply
    [reply] = await bot.say("设置 积分 接单 2", user="老板")
    assert "2 分" in reply
    [reply] = await bot.say("设置", user="老板")
    assert "协作积分：接单 2" in reply
    await bot.say("求助 需要帮助", user="张三")
    [reply] = await bot.say("接 #1", user="李四")
    assert "+2" in reply


async def test_top_helpers_for_the_weekly_retro(bot, db, clock) -> None:
    from datetime import date

    from storage.goals import local_bounds
    from storage.points import top_helpers

    for i in range(1, 4):
        await bot.say(f"求助 问题{i}", user="张三")
    await bot.say("接 #1", user="李四")
    await bot.say("接 #2", user="王五")
    await bot.say("解决 #2", user="王五")
    await bot.say("接 #3", user="王五")
    async with db.transaction() as store:
        org = await store.get_org("console", "console")
        store.bind_team(org, await store.get_team(org, "销售一组"))
        start, end = local_bounds(store, date(2026, 11, 23), date(2026, 11, 30))
        top = await top_helpers(store, start, end)
    assert [(m.name, p) for m, p in top] == [("王五", 5), ("李四", 1)]
    [rank] = await bot.say("排行 本月", user="张三")
    assert "11月" in rank and rank.index("王五") < rank.index("李四")


# -------------------------------------------------------------- knowledge
async def test_search_finds_a_chinese_substring_in_tips_and_customers(bot, make_bot) -> None:
    [reply] = await bot.say("分享 报价技巧：先问预算 #报价", user="张三")
    assert "已收入知识库：报价技巧" in reply
    await bot.say("分享 异议处理 客户说太贵时，先拆分价值 #异议", user="李四")
    await bot.say("认领 报价通科技有限公司", user="李四")
    other = make_bot(org="other")
    await other.say("分享 报价秘籍 别家的报价经验", user="赵六")
    [reply] = await bot.say("搜 报价", user="王五")
    # Full-width punctuation is folded by the router (：→:), for the tip and for the query alike.
    assert "报价技巧:先问预算" in reply and "报价通科技有限公司" in reply
    assert "报价秘籍" not in reply and "异议处理" not in reply
    [reply] = await bot.say("搜 技巧：先问", user="王五")
    assert "报价技巧:先问预算" in reply
    [reply] = await bot.say("/search 太贵", user="王五")
    assert "异议处理" in reply
    [reply] = await bot.say("搜 #异议", user="王五")
    assert "异议处理" in reply
    [reply] = await bot.say("搜 不存在的词", user="王五")
    assert "没有找到" in reply
    [reply] = await other.say("搜 报价", user="赵六")
    assert "报价秘籍" in reply and "报价技巧" not in reply
