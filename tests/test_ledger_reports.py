"""Digest, retro, 看板 and the deals export read one ledger: for the same period they say the same
numbers — also after a win is undone, in the same week or in a later month."""

from __future__ import annotations

from pathlib import Path

from openpyxl import load_workbook

from bot import cli
from bot.cli_sheets import run_export
from tests.schedule_helpers import run_job, texts


async def _export(db, clock, tmp_path: Path, month: str) -> list[list[object]]:  # type: ignore[no-untyped-def]
    out = tmp_path / f"deals-{month}.xlsx"
    argv = ["export", "deals", "--team", "销售一组", "--month", month, "--out", str(out)]
    code, text = await run_export(db, cli.build_parser().parse_args(argv), clock.now)
    assert code == 0, text
    return [[c.value for c in row] for row in load_workbook(out).active.iter_rows()]


async def _reports(bot, db, clock, day: str):  # type: ignore[no-untyped-def]
    clock.set_local(f"{day} 18:00")
    # The first push is the digest; in December a once-a-year holiday-data notice may follow it.
    digest = texts(await run_job(db, "digest", clock.now))[0]
    [retro] = texts(await run_job(db, "retro", clock.now))
    [board] = await bot.say("看板", user="老板")
    return digest, retro, board


async def test_a_win_undone_and_then_priced_higher_counts_zero_everywhere(bot, db, clock, tmp_path) -> None:
    clock.set_local("2026-11-25 10:00")  # Wednesday
    await bot.say("认领 小米", user="张三")
    await bot.say("赢单 小米 200万", user="张三")
    await bot.say("撤销赢单 小米", user="张三")
    await bot.say("跟进 小米 重新报价 金额:900万", user="张三")
    digest, retro, board = await _reports(bot, db, clock, "2026-11-25")
    # No win anywhere; 900万 is only the open deal's value in the pipeline (谈判, back from 赢单).
    assert "赢单 0" in digest and "🎉" not in digest and "200万" not in digest
    assert "🗂 商机 1 个 · 900万" in digest and "· 谈判 1 个 · 900万" in digest
    assert "🎉 赢单 0 个（持平），金额 0元" in retro and "200万" not in retro and "· 小米" not in retro
    assert "· 赢单 0" in board and "200万" not in board
    assert "· 跟进中 1 · 900万（谈判1）" in board  # the open deal's value in the pipeline, not a win
    rows = await _export(db, clock, tmp_path, "2026-11")
    assert rows[1:] == [[None, "合计", "赢单 0 个（已扣除撤销）", None, None, 0, None, "输单 0 个"]]
    [detail] = await bot.say("客户 小米", user="张三")
    assert "900万" in detail  # the open deal's amount


async def test_digest_retro_board_and_export_agree_on_a_seeded_week(bot, db, clock, tmp_path) -> None:
    await bot.join("李四")
    clock.set_local("2026-11-23 10:00")  # Monday
    await bot.say("认领 华为", user="张三")
    await bot.say("赢单 华为 200万 分成:张三60,李四40", user="张三")
    await bot.say("认领 腾讯", user="李四")
    await bot.say("赢单 腾讯 50万", user="李四")
    monday_digest = texts(await run_job(db, "digest", clock.set_local("2026-11-23 18:00")))[0]
    clock.set_local("2026-11-25 10:00")
    await bot.say("认领 小米", user="张三")
    await bot.say("赢单 小米 100万", user="张三")
    await bot.say("撤销赢单 小米", user="张三")
    await bot.say("认领 百度", user="李四")
    await bot.say("输单 百度 没预算", user="李四")
    digest, retro, board = await _reports(bot, db, clock, "2026-11-27")
    assert "认领 2 · 跟进 2 · 赢单 2" in monday_digest and "🎉 赢单 2 个 · 250万" in monday_digest
    assert "· 华为 200万 · 张三 60% 李四 40%" in monday_digest and "· 腾讯 50万 · 李四" in monday_digest
    wednesday = texts(await run_job(db, "digest", clock.set_local("2026-11-25 18:00")))[0]
    assert "赢单 0" in wednesday and "🎉" not in wednesday  # 小米 shows only as stage moves
    assert "🎉 赢单 2 个" in retro and "金额 250万" in retro
    assert "🆕 新客户 4 个" in retro
    assert "· 赢单 250万" in board  # the team
    assert "· 赢单 130万" in board and "· 赢单 120万" in board  # 李四 80万 + 50万, 张三 60% of 200万
    rows = await _export(db, clock, tmp_path, "2026-11")
    assert rows[0] == ["时间", "类型", "客户", "商机", "负责人", "金额（元）", "业绩分成", "输单原因"]
    assert [r[1:6] for r in rows[1:-1]] == [
        ["赢单", "华为", "首单", "张三", 2_000_000],
        ["赢单", "腾讯", "首单", "李四", 500_000],
        ["输单", "百度", "首单", "李四", None],
    ]
    assert rows[1][6] == "张三 60% 1,200,000.00、李四 40% 800,000.00" and rows[3][7] == "没预算"
    assert rows[-1][1:6] == ["合计", "赢单 2 个（已扣除撤销）", None, None, 2_500_000]


async def test_an_unwin_in_december_leaves_november_as_it_was_and_december_says_so(bot, db, clock, tmp_path) -> None:
    clock.set_local("2026-11-26 10:00")
    await bot.say("认领 小米", user="张三")
    await bot.say("赢单 小米 200万", user="张三")
    _, november_retro, _ = await _reports(bot, db, clock, "2026-11-27")
    clock.set_local("2026-11-30 09:00")
    [closed_week] = await bot.say("复盘 上周", user="老板")
    clock.set_local("2026-12-02 10:00")
    await bot.say("撤销赢单 小米", user="张三")
    digest, retro, board = await _reports(bot, db, clock, "2026-12-02")
    assert "赢单 -1" in digest and "· ↩️ 撤销往期赢单 小米 -200万 · 张三" in digest
    assert "🎉 赢单 -1 个" in retro and "金额 -200万" in retro
    assert "↩️ 其中撤销往期赢单 1 个，-200万，已从本周扣除" in retro
    assert "· 赢单 -200万" in board
    clock.set_local("2026-12-02 18:00")
    [again] = await bot.say("复盘 上周", user="老板")
    assert again == closed_week  # a closed week never changes afterwards
    assert "🎉 赢单 1 个" in november_retro and "· 小米 200万 · 张三" in again
    [board_november] = await bot.say("看板 11月", user="老板")
    assert "· 赢单 200万" in board_november
    november = await _export(db, clock, tmp_path, "2026-11")
    december = await _export(db, clock, tmp_path, "2026-12")
    assert november[-1][1:6] == ["合计", "赢单 1 个（已扣除撤销）", None, None, 2_000_000]
    assert december[1][1:6] == ["撤销赢单（往期赢单）", "小米", "首单", "张三", -2_000_000]
    assert december[-1][1:6] == ["合计", "赢单 -1 个（已扣除撤销）", None, None, -2_000_000]


async def test_a_bad_month_is_refused_in_chinese(bot, db, clock, tmp_path) -> None:
    await bot.say("认领 小米", user="张三")
    argv = ["export", "deals", "--team", "销售一组", "--month", "11月", "--out", str(tmp_path / "x.xlsx")]
    code, text = await run_export(db, cli.build_parser().parse_args(argv), clock.now)
    assert code == 1 and "要写成 年-月，例如 --month 2026-11" in text
