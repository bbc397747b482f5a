"""The monthly 协作复盘: pushed on the first working day of the month, and on demand (复盘 本月|上月)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from schedules.jobs import JOBS, TeamSchedule
from storage.database import Database
from tests.schedule_helpers import run_job, texts
from tests.test_cli_and_serve import run_cli


def test_the_month_retro_fires_on_the_first_working_day_of_the_month() -> None:
    job = JOBS["month_retro"]
    cn = TeamSchedule.of({}, "Asia/Shanghai")
    weekdays = TeamSchedule.of({"calendar": "weekdays"}, "Asia/Shanghai")
    # October 2026 opens with the National Day holiday (1–7 October): the 8th is its first working day.
    assert [d for d in range(1, 12) if job.slot_on(date(2026, 10, d), cn)] == [8]
    assert [d for d in range(1, 12) if job.slot_on(date(2026, 10, d), weekdays)] == [1]
    slot = job.slot_on(date(2026, 11, 2), cn)  # 1 November is a Sunday
    assert slot is not None and slot.key == "2026-11" and job.slot_on(date(2026, 11, 3), cn) is None
    assert slot.due_at.isoformat() == "2026-11-02T02:00:00+00:00"  # 10:00 in Shanghai


async def _seed_november(bot, clock) -> None:  # type: ignore[no-untyped-def]
    clock.set_local("2026-10-26 09:00")
    await bot.join("张三", "李四", "王五")
    await bot.say("设置 主管 @老板", user="老板")
    await bot.say("认领 旧客户", user="王五")  # October: in the pipeline at the start of November
    clock.set_local("2026-11-03 10:00")
    await bot.say("认领 华为", user="张三")
    await bot.say("跟进 华为 报价 阶段:报价 金额:80万", user="张三")
    await bot.say("认领 小米", user="李四")
    await bot.say("求助 要一份案例", user="张三")
    clock.set_local("2026-11-03 12:00")
    await bot.say("接 #1", user="李四")
    await bot.say("解决 #1 发了", user="李四")
    clock.set_local("2026-11-10 10:00")
    await bot.say("赢单 华为 75万", user="张三")
    await bot.say("输单 小米 选了竞品", user="李四")
    clock.set_local("2026-12-01 09:30")
    await bot.say("认领 十二月客户", user="张三")  # December: not in November's numbers


async def test_the_month_retro_covers_the_previous_month_once(bot, db: Database, clock) -> None:
    await _seed_november(bot, clock)
    clock.set_local("2026-12-01 10:00")
    [text] = texts(await run_job(db, "month_retro", clock.now))
    assert "销售一组 2026年11月 协作复盘" in text
    assert "🆕 新客户 2 个 · 📝 跟进 3 次" in text
    assert "🎉 赢单 1 个 · 75万\n· 华为 75万 · 张三" in text
    assert "❌ 输单 1 个\n· 小米 · 李四：选了竞品" in text
    # 1 November: 旧客户 (线索); 30 November: 旧客户 again — 华为 won, 小米 lost.
    assert "🗂 商机 1 个 · 0元（较月初 持平）\n· 线索 1 个" in text
    assert "· 张三：跟进 2 次，新客户 1 个" in text and "· 李四：跟进 1 次，新客户 1 个" in text
    assert "求助 发起 1 · 被接 1 · 解决 1" in text and "⭐ 协作之星：李四（4 分）" in text
    assert "十二月客户" not in text and "预测" not in text
    assert (await run_job(db, "month_retro", clock.now)).status == "already"


async def test_leads_ask_for_this_or_last_months_retro(bot, clock) -> None:
    await _seed_november(bot, clock)
    [reply] = await bot.say("复盘 上月", user="老板")
    assert "2026年11月 协作复盘" in reply and "· 华为 75万 · 张三" in reply
    [reply] = await bot.say("复盘 本月", user="老板")
    assert "2026年12月 协作复盘" in reply and "新客户 1 个" in reply and "🔮 12月预测" in reply
    [reply] = await bot.say("复盘 上周", user="老板")
    assert "周复盘 · 11月23日–11月29日" in reply
    [reply] = await bot.say("复盘 10月", user="老板")
    assert "2026年10月 协作复盘" in reply and "新客户 1 个" in reply
    [reply] = await bot.say("复盘 去年", user="老板")
    assert "复盘按周或按月看" in reply and "示例：复盘 上月" in reply
    [reply] = await bot.say("复盘 前阵子", user="老板")
    assert "看不懂" in reply and "示例：复盘 上月" in reply
    [reply] = await bot.say("复盘 上月", user="张三")
    assert "只有主管" in reply
    [reply] = await bot.say("设置 月复盘 9点半", user="老板")
    assert "月度协作复盘已设为每月第一个工作日 09:30" in reply
    [listing] = await bot.say("设置", user="张三")
    assert "月度协作复盘：每月第一个工作日 09:30（上月的数字）" in listing
    [reply] = await bot.say("设置 月复盘 25:00", user="老板")
    assert "不是有效的时间" in reply and "示例：设置 月复盘 10:00" in reply


def test_jobs_list_and_run_know_the_month_retro(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    assert run_cli("chat", "--db", url, "--user", "张三", stdin="认领 华为\n").returncode == 0
    listed = run_cli("jobs", "list", "--db", url)
    assert listed.returncode == 0, listed.stderr
    assert "month_retro" in listed.stdout and "协作复盘" in listed.stdout
    shown = run_cli("jobs", "run", "month_retro", "--print", "--db", url)
    assert shown.returncode == 0, shown.stderr
    assert "协作复盘" in shown.stdout
