"""Issue #14: the digests, the monthly 协作复盘, 看板 and the Excel export agree on a month's wins."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from openpyxl import load_workbook

from bot import cli
from bot.cli_sheets import run_export
from handlers.amounts import parse_amount
from storage.database import Database
from tests.schedule_helpers import run_job, texts
from tests.test_manager_reports import assert_fits_a_phone

EVENT_DAYS = ("2026-11-03", "2026-11-05", "2026-11-10", "2026-11-17", "2026-11-24")


def _fen(amount: str) -> int:
    """`-30万` → -30000000: an amount as the reports print it."""
    sign = -1 if amount.startswith("-") else 1
    return sign * int(parse_amount(amount.lstrip("-")) * 100)


async def _seed(bot, clock) -> None:  # type: ignore[no-untyped-def]
    clock.set_local("2026-10-26 09:00")
    await bot.join("张三", "李四")
    await bot.say("设置 主管 @老板", user="老板")
    await bot.say("认领 京东", user="张三")
    await bot.say("赢单 京东 30万", user="张三")  # October's win, undone in November
    clock.set_local("2026-11-03 10:00")
    await bot.say("认领 华为", user="张三")
    await bot.say("跟进 华为 报价 阶段:报价 金额:180万", user="张三")
    await bot.say("认领 腾讯", user="李四")
    await bot.say("跟进 腾讯 需求会 阶段:需求确认 金额:50万", user="李四")
    clock.set_local("2026-11-05 10:00")
    await bot.say("撤销赢单 京东", user="张三")
    clock.set_local("2026-11-10 10:00")
    await bot.say("赢单 华为 200万 分成:张三60,李四40", user="张三")
    await bot.say("认领 小米", user="张三")
    await bot.say("赢单 小米 100万", user="张三")
    await bot.say("撤销赢单 小米", user="张三")
    clock.set_local("2026-11-17 10:00")
    await bot.say("赢单 腾讯", user="李四")
    clock.set_local("2026-11-24 10:00")
    await bot.say("认领 百度", user="李四")
    await bot.say("输单 百度 没预算", user="李四")


async def test_digests_month_retro_board_and_export_give_the_same_wins(
    bot, db: Database, clock, tmp_path: Path
) -> None:
    await _seed(bot, clock)
    # November: 华为 200万 (split) + 腾讯 50万, 小米 won and undone, 京东 (October's 30万) undone → 1 个, 220万.
    count, fen = 1, 220_000_000  # fen
    days = []
    for day in EVENT_DAYS:
        [digest] = texts(await run_job(db, "digest", clock.set_local(f"{day} 18:00")))
        days.append(digest)
    headers = [int(re.search(r"· 赢单 (-?\d+)\n", d).group(1)) for d in days]  # type: ignore[union-attr]
    won = [re.search(r"🎉 赢单 (-?\d+) 个 · (\S+)", d) for d in days]
    assert headers == [0, -1, 1, 1, 0]
    assert sum(headers) == count
    assert sum(_fen(m.group(2)) for m in won if m) == fen
    assert "· 华为 200万 · 张三 60% 李四 40%" in days[2] and "小米" not in days[2].split("🎉")[1].split("\n\n")[0]
    assert "· ↩️ 撤销往期赢单 京东 -30万 · 张三" in days[1]

    [retro] = texts(await run_job(db, "month_retro", clock.set_local("2026-12-01 10:00")))
    assert "🎉 赢单 1 个 · 220万" in retro
    assert "❌ 输单 1 个\n· 百度 · 李四：没预算" in retro

    for text in (*days, retro):  # a split win and an un-win of an earlier win fit too
        assert_fits_a_phone(text)

    [board] = await bot.say("看板 11月", user="老板")
    assert "· 赢单 220万\n· 赢单数 1 " in board
    # The pipeline at the month's end agrees too: 京东 and 小米 back in 谈判 (30万 + 100万).
    assert "🗂 商机 2 个 · 130万（较月初 ↑2个 ↑130万）\n· 谈判 2 个 · 130万 ↑2" in retro
    assert "· 跟进中（期末） 2 · 130万（谈判2）" in board  # the retro's month-end pipeline

    out = tmp_path / "deals.xlsx"
    argv = ["export", "deals", "--team", "销售一组", "--month", "2026-11", "--out", str(out)]
    code, text = await run_export(db, cli.build_parser().parse_args(argv), clock.now)
    assert code == 0, text
    rows = [[c.value for c in row] for row in load_workbook(out).active.iter_rows()]
    assert rows[-1][1:6] == ["合计", f"赢单 {count} 个（已扣除撤销）", None, None, Decimal(fen) / 100]
