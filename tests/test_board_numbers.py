"""The web board says what the chat says: for the same period its wins, amounts, new customers, follow-ups,
goal progress and funnel are the numbers of `看板` and `复盘` — also when a win is undone."""

from __future__ import annotations

import re

from tests.board_support import link_in
from tests.schedule_helpers import run_job, texts


def kpi(page: str, name: str) -> str:
    found = re.search(rf'data-kpi="{name}">([^<]*)<', page)
    assert found, name
    return found.group(1)


def won_of(page: str, name: str) -> str:
    found = re.search(rf'data-won="{name}">([^<]*)<', page)
    assert found, name
    return found.group(1)


def stage_count(page: str, stage: str) -> int:
    found = re.search(rf'data-stage="{stage}">(\d+)<', page)
    assert found, stage
    return int(found.group(1))


async def test_the_board_and_the_chat_reports_agree_on_a_seeded_week(bot, db, board, clock) -> None:
    await bot.join("张三", "李四")
    clock.set_local("2026-11-23 10:00")  # Monday
    await bot.say("认领 华为", user="张三")
    await bot.say("赢单 华为 200万 分成:张三60,李四40", user="张三")
    await bot.say("认领 腾讯", user="李四")
    await bot.say("赢单 腾讯 50万", user="李四")
    clock.set_local("2026-11-25 10:00")
    await bot.say("认领 小米", user="张三")
    await bot.say("赢单 小米 100万", user="张三")
    await bot.say("撤销赢单 小米", user="张三")
    await bot.say("认领 百度", user="李四")
    await bot.say("跟进 百度 报价中 阶段:报价 金额:30万", user="李四")
    clock.set_local("2026-11-27 18:00")
    [retro] = texts(await run_job(db, "retro", clock.now))
    [chat_board] = await bot.say("看板", user="老板")
    url = link_in(await bot.say("看板 链接", user="老板"))

    status, week, _ = await board.get(f"{url}?p=week")
    assert status == 200
    assert "🎉 赢单 2 个" in retro and "金额 250万" in retro and "🆕 新客户 4 个" in retro
    assert kpi(week, "赢单") == "2 个" and kpi(week, "赢单金额") == "250万 元" and kpi(week, "新客户") == "4 个"

    status, month, _ = await board.get(url)
    assert status == 200
    assert "· 赢单 250万" in chat_board and kpi(month, "赢单金额") == "250万 元"
    assert "· 赢单 130万" in chat_board and won_of(month, "李四") == "130万"  # 80万 of 华为 + 腾讯
    assert "· 赢单 120万" in chat_board and won_of(month, "张三") == "120万"  # 60% of 华为; 小米 undone
    assert won_of(month, "团队") == "250万"
    # The funnel: the open deals as 看板 counts them (小米 back in 谈判 after the undo, 百度 at 报价).
    counts = {s: stage_count(month, s) for s in ("线索", "初访", "需求确认", "报价", "谈判")}
    assert sum(counts.values()) == 2 and counts["报价"] == 1 and counts["谈判"] == 1
    assert "跟进中 2" in chat_board


async def test_a_win_undone_and_priced_higher_counts_zero_on_the_board(bot, db, board, clock) -> None:
    clock.set_local("2026-11-25 10:00")
    await bot.say("认领 小米", user="张三")
    await bot.say("赢单 小米 200万", user="张三")
    await bot.say("撤销赢单 小米", user="张三")
    await bot.say("跟进 小米 重新报价 金额:900万", user="张三")
    clock.advance(minutes=5)
    url = link_in(await bot.say("看板 链接", user="老板"))
    for period in ("week", "month", "quarter"):
        status, page, _ = await board.get(f"{url}?p={period}")
        assert status == 200
        assert kpi(page, "赢单") == "0 个" and kpi(page, "赢单金额") == "0 元", period
    status, page, _ = await board.get(url)
    assert "900万" in page  # only as the open deal's value in the funnel
    assert re.search(r'data-stage="谈判">1<', page)


async def test_a_past_month_and_a_period_that_does_not_read(bot, board, clock) -> None:
    clock.set_local("2026-11-25 10:00")
    await bot.say("认领 小米", user="张三")
    await bot.say("赢单 小米 200万", user="张三")
    clock.set_local("2026-12-03 10:00")
    url = link_in(await bot.say("看板 链接", user="老板"))
    _, december, _ = await board.get(url)
    assert kpi(december, "赢单") == "0 个"
    _, november, _ = await board.get(f"{url}?p=2026-11")
    assert kpi(november, "赢单") == "1 个" and kpi(november, "赢单金额") == "200万 元" and "11月" in november
    status, odd, _ = await board.get(f"{url}?p=2026-13")
    assert status == 200 and "看不懂的时段「2026-13」，已显示本月。" in odd and "12月" in odd


async def test_the_forecast_is_the_retro_s(bot, board, clock) -> None:
    await bot.join("张三")
    clock.set_local("2026-11-23 09:00")
    await bot.say("认领 华为", user="张三")
    await bot.say("商机 华为 二期 金额:100万 阶段:报价 预计:2026-11-30", user="张三")
    await bot.say("认领 阿里", user="张三")
    await bot.say("跟进 阿里 需求会 阶段:需求确认 金额:20万", user="张三")
    await bot.say("设置 赢率 报价 50%", user="老板")
    clock.set_local("2026-11-27 17:00")
    [retro] = await bot.say("复盘 本周", user="老板")
    assert "🔮 11月预测 50万（按阶段赢率加权）\n· 报价 1 个 100万 × 50%" in retro
    assert "· 未填预计 2 个 20万（不计入）" in retro
    url = link_in(await bot.say("看板 链接", user="老板"))
    _, page, _ = await board.get(url)
    assert re.search(r"data-forecast>50万<", page)
    assert "<td>报价</td><td>1</td><td>100万</td><td>50%</td><td>50万</td>" in page
    assert "未填预计 2 个 20万（不计入）" in page
    _, past, _ = await board.get(f"{url}?p=2026-10")
    assert "已结束的时段没有预测。" in past
