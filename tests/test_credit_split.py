"""业绩分成: a shared win credits each member their share, on 看板, in 排行 业绩 and in goal progress;
a team's default (设置 分成); bad splits are refused in Chinese with an example."""

from __future__ import annotations

import pytest


async def _team(bot) -> None:  # type: ignore[no-untyped-def]
    await bot.join("李四", "王五")
    await bot.say("认领 华为", user="张三")


async def test_a_win_split_60_40_credits_120_and_80_on_the_board_and_in_the_sales_ranking(bot, clock) -> None:
    clock.set_local("2026-11-24 10:00")
    await _team(bot)
    [reply] = await bot.say("赢单 华为 200万 分成:张三60,@李四40", user="张三")
    assert "赢单，金额 200万" in reply and "分成：张三 120万（60%）、李四 80万（40%）" in reply
    [board] = await bot.say("看板", user="老板")
    assert "· 赢单 200万" in board  # the team: the whole amount, once
    assert "张三" in board and "· 赢单 120万" in board and "李四" in board and "· 赢单 80万" in board
    [rank] = await bot.say("排行 业绩 本月", user="王五")
    lines = rank.splitlines()
    assert lines[1] == "🥇 张三 120万 · 赢单 1 个" and lines[2] == "🥈 李四 80万"
    assert lines[-1] == "团队合计 200万 · 赢单 1 个"
    [english] = await bot.say("/rank sales", user="王五")
    assert "本周业绩排行" in english and "张三 120万" in english


async def test_the_english_split_key_and_an_undo_takes_every_share_back(bot, clock) -> None:
    clock.set_local("2026-11-24 10:00")
    await _team(bot)
    await bot.say("/won 华为 100万 split:张三50,李四50", user="张三")
    await bot.say("撤销赢单 华为", user="张三")
    [rank] = await bot.say("排行 业绩", user="张三")
    assert rank.splitlines() == ["💰 本周业绩排行（按分成后的赢单金额）", "还没有赢单。"]


async def test_an_even_split_by_default_shares_between_the_owner_and_two_collaborators(bot, clock) -> None:
    clock.set_local("2026-11-24 10:00")
    await _team(bot)
    [reply] = await bot.say("设置 分成 平分", user="老板")
    assert "负责人和协作人平分" in reply
    await bot.say("协作 华为 @李四", user="张三")
    await bot.say("协作 华为 @王五", user="张三")
    [reply] = await bot.say("跟进 华为 签了 阶段:赢单 金额:100万", user="张三")
    assert "分成：张三 33.33万（33.3%）、李四 33.33万（33.3%）、王五 33.33万（33.3%）" in reply
    assert "协作积分各 +5" in reply  # the collaboration points for a shared win stay as they are
    [rank] = await bot.say("排行 业绩", user="张三")
    # 100万 = 1,000,000.00 yuan in fen does not divide by three: the odd fen goes to the owner.
    assert "张三 33.33万" in rank and "团队合计 100万 · 赢单 1 个" in rank
    [settings] = await bot.say("设置", user="老板")
    assert "赢单业绩分成默认：负责人和协作人平分" in settings


@pytest.mark.parametrize(
    ("split", "refusal"),
    [
        ("分成:张三60,赵六40", "找不到本团队成员「赵六」"),
        ("分成:张三60,李四30", "分成加起来要等于 100，现在是 90"),
        ("分成:张三50,张三50", "「张三」写了两次"),
        ("分成:张三六十", "分成「张三六十」不认识"),
        ("分成:张三100,李四0", "「李四」的分成是 0"),
    ],
)
async def test_a_bad_split_is_refused_with_an_example_and_nothing_is_won(bot, clock, split, refusal) -> None:
    clock.set_local("2026-11-24 10:00")
    await _team(bot)
    [reply] = await bot.say(f"赢单 华为 200万 {split}", user="张三")
    assert refusal in reply and "示例：赢单 华为" in reply
    [board] = await bot.say("看板", user="老板")
    assert "· 赢单 0" in board


async def test_a_bad_default_is_refused_with_the_choices(bot) -> None:
    [reply] = await bot.say("设置 分成 随便", user="老板")
    assert "「负责人」" in reply and "「平分」" in reply and "示例：设置 分成 平分" in reply


async def test_a_follow_up_to_a_win_may_name_the_split_and_only_a_win_may(bot, clock) -> None:
    clock.set_local("2026-11-24 10:00")
    await _team(bot)
    [refused] = await bot.say("跟进 华为 报价了 阶段:报价 分成:张三60,李四40", user="张三")
    assert "业绩分成只在赢单时写" in refused and "示例：跟进 华为 签约了 阶段:赢单 分成:张三60,李四40" in refused
    [reply] = await bot.say("跟进 华为 签约了 阶段:赢单 金额:200万 split:李四40,张三60", user="张三")
    assert "分成：李四 80万（40%）、张三 120万（60%）" in reply
    [rank] = await bot.say("排行 业绩", user="张三")
    assert "🥇 张三 120万 · 赢单 1 个" in rank and "🥈 李四 80万" in rank
