"""What a manager reads in the digest and the weekly retro, line by line, from a seeded week."""

from __future__ import annotations

from storage.database import Database
from tests.schedule_helpers import run_job, texts


async def _seed_week(bot, db, clock) -> None:  # type: ignore[no-untyped-def]
    """The week of Monday 2026-11-23, with a week of history before it."""
    clock.set_local("2026-11-16 09:00")
    await bot.join("张三", "李四", "王五", "赵六")
    await bot.say("设置 主管 @老板", user="老板")
    clock.set_local("2026-11-16 10:00")
    await bot.say("认领 华为", user="张三")
    await bot.say("跟进 华为 拜访 阶段:初访 金额:50万", user="张三")
    await bot.say("认领 腾讯", user="王五")
    await bot.say("认领 京东", user="张三")
    await bot.say("认领 百度", user="张三")
    clock.set_local("2026-11-23 09:00")
    await bot.say("请假 到 11-27", user="王五")
    await bot.say("商机 华为 二期 金额:100万 阶段:报价 预计:2026-11-30", user="张三")
    await bot.say("认领 阿里", user="李四")
    await bot.say("跟进 阿里 需求会 阶段:需求确认 金额:20万 下次:11-24", user="李四")
    clock.set_local("2026-11-24 10:00")
    await bot.say("赢单 华为 首单 60万", user="张三")
    await bot.say("认领 小米", user="张三")
    await bot.say("输单 小米 预算被砍", user="张三")
    await bot.say("释放 京东", user="张三")
    await bot.say("转交 百度 @李四", user="张三")
    clock.set_local("2026-11-25 10:00")
    await bot.say("求助 需要法务看合同", user="张三")


async def test_the_weekly_retro_names_wins_and_losses_and_shows_the_pipeline_against_monday(
    bot, db: Database, clock
) -> None:
    await _seed_week(bot, db, clock)
    clock.set_local("2026-11-27 17:00")
    [retro] = texts(await run_job(db, "retro", clock.now))
    assert "赢单 1 个（较上周 ↑1），金额 60万" in retro and "· 华为 60万 · 张三" in retro
    assert "❌ 输单 1 个\n· 小米 · 张三：预算被砍" in retro  # a lost deal appears with its reason
    # Monday: 华为 首单 初访 50万 and three leads; Friday: 二期 报价 100万, 阿里 需求确认 20万, three leads.
    assert "🗂 商机 5 个 · 120万（较周初 ↑1个 ↑70万）" in retro
    assert "· 线索 3 个\n· 初访 0 个 ↓1\n· 需求确认 1 个 · 20万 ↑1\n· 报价 1 个 · 100万 ↑1" in retro


async def test_the_forecast_weighs_a_quote_at_60_percent_unless_the_team_set_50(bot, db: Database, clock) -> None:
    await _seed_week(bot, db, clock)
    clock.set_local("2026-11-27 17:00")
    [reply] = await bot.say("复盘 本周", user="老板")
    assert "🔮 11月预测 60万（按阶段赢率加权）\n· 报价 1 个 100万 × 60%" in reply
    # Open deals without 预计 are counted apart, not forecast.
    assert "· 未填预计 4 个 20万（不计入）" in reply
    [reply] = await bot.say("设置 赢率 报价 50%", user="老板")
    assert "「报价」阶段的预测赢率已设为 50%（默认 60%）" in reply
    [reply] = await bot.say("复盘 本周", user="老板")
    assert "🔮 11月预测 50万" in reply and "· 报价 1 个 100万 × 50%" in reply
    [listing] = await bot.say("设置", user="张三")
    assert "预测赢率：线索10% 初访20% 需求确认40% 报价50% 谈判80%" in listing


async def test_win_rates_refuse_what_they_cannot_read_with_an_example(bot) -> None:
    await bot.join("张三")
    await bot.say("设置 主管 @老板", user="老板")
    for value, why in (
        ("报价", "请写上阶段和百分比"),
        ("赢单 50%", "赢率只能给跟进中的阶段设"),
        ("报价 150%", "赢率要在 0% 到 100% 之间"),
    ):
        [reply] = await bot.say(f"设置 赢率 {value}", user="老板")
        assert why in reply and "示例：设置 赢率 报价 50%" in reply
    [reply] = await bot.say("设置 赢率 报价 50%", user="张三")
    assert "只有主管" in reply


async def test_the_digest_names_overdue_steps_idle_reps_moves_and_waiting_help(bot, db: Database, clock) -> None:
    await _seed_week(bot, db, clock)
    clock.set_local("2026-11-24 18:00")
    [digest] = texts(await run_job(db, "digest", clock.now))
    assert "🎉 赢单 1 个 · 60万\n· 华为 60万 · 张三" in digest
    assert "🔁 释放 1 · 转交 1\n· 京东 张三 → 公海（释放）\n· 百度 张三 → 李四（转交）" in digest
    # 李四 did nothing on Tuesday; 王五 is on leave, so not listed; 老板 is a lead, not a rep.
    assert "💤 没有跟进和新客户：李四、赵六" in digest
    assert "下一步逾期" not in digest  # 阿里 is due today, not overdue yet
    clock.set_local("2026-11-27 18:00")
    [digest] = texts(await run_job(db, "digest", clock.now))
    assert "⏰ 下一步逾期 1 个\n· 李四 1 个：阿里 3天" in digest
    assert "🆘 超过 24 小时未解决的求助 1 个\n· #1 需要法务看合同（张三，56 小时，待接）" in digest


async def test_a_rep_on_leave_is_not_counted_missing_from_the_stand_up(bot, db: Database, clock) -> None:
    await _seed_week(bot, db, clock)
    for day in ("2026-11-23", "2026-11-24"):
        clock.set_local(f"{day} 09:10")
        for user in ("张三", "李四", "赵六"):
            await bot.say("晨会 拜访客户", user=user)
    clock.set_local("2026-11-24 18:00")
    [digest] = texts(await run_job(db, "digest", clock.now))
    assert "🗣 晨会参与率：100%（不含主管和请假）" in digest  # 王五 on leave, 老板 a lead
    clock.set_local("2026-11-25 18:00")
    [digest] = texts(await run_job(db, "digest", clock.now))
    assert "🗣 晨会参与率：0%" in digest
    clock.set_local("2026-11-27 17:00")
    [retro] = texts(await run_job(db, "retro", clock.now))
    assert "🗣 晨会参与率：40%（上周 0%）（不含主管和请假）" in retro  # 6 answers of 3 reps × 5 days


async def test_last_weeks_retro_shows_the_pipeline_as_it_stood_then(bot, db: Database, clock) -> None:
    await _seed_week(bot, db, clock)
    clock.set_local("2026-12-01 10:00")
    await bot.say("赢单 阿里 25万", user="李四")
    await bot.say("跟进 华为 二期 谈判 阶段:谈判", user="张三")
    [reply] = await bot.say("复盘 上周", user="老板")
    assert "🗂 商机 5 个 · 120万（较周初 ↑1个 ↑70万）" in reply and "· 需求确认 1 个 · 20万 ↑1" in reply
    assert "谈判" not in reply and "预测" not in reply  # the forecast is about now, not a closed week
    assert "#1 需要法务看合同（张三，110 小时，待接）" in reply  # waiting at the week's end


async def test_a_deal_whose_expected_date_passed_is_not_forecast_for_the_next_month(bot, db: Database, clock) -> None:
    await _seed_week(bot, db, clock)
    clock.set_local("2026-12-01 10:00")
    [reply] = await bot.say("复盘 本周", user="老板")
    assert "🔮 12月预测 0元（按阶段赢率加权）" in reply
    assert "· 预计已过 1 个 100万（不计入）" in reply and "· 未填预计 4 个 20万（不计入）" in reply


async def test_every_line_fits_a_phone_and_no_table_or_heading_is_used(bot, db: Database, clock) -> None:
    await _seed_week(bot, db, clock)
    [retro] = texts(await run_job(db, "retro", clock.set_local("2026-11-27 17:00")))
    [digest] = texts(await run_job(db, "digest", clock.set_local("2026-11-27 18:00")))
    clock.set_local("2026-12-01 10:00")
    [month] = await bot.say("复盘 上月", user="老板")
    for text in (retro, digest, month):
        assert_fits_a_phone(text)


def assert_fits_a_phone(text: str) -> None:
    for line in text.splitlines():
        assert len(line) <= 32, line  # a phone shows about this many characters of Chinese text per line
        assert not line.startswith(("|", "#", "- ", "> ")), line  # DingTalk renders no tables


async def test_a_rep_dates_a_claimed_deal_with_yuji_and_it_enters_the_forecast(bot, db: Database, clock) -> None:
    await _seed_week(bot, db, clock)
    clock.set_local("2026-11-27 10:00")
    [reply] = await bot.say("跟进 阿里 谈价格 阶段:谈判 预计:11-30", user="李四")
    assert "阶段：需求确认 → 谈判" in reply and "预计成交：11-30 周一" in reply
    [reply] = await bot.say("复盘 本周", user="老板")
    # 华为 二期 100万 × 60% + 阿里 20万 × 80%; 阿里 is no longer undated.
    assert "🔮 11月预测 76万（按阶段赢率加权）" in reply and "· 谈判 1 个 20万 × 80%" in reply
    assert "· 未填预计 3 个 0元（不计入）" in reply
    [reply] = await bot.say("跟进 阿里 催款 预计:11-01", user="李四")
    assert "预计成交日期 2026-11-01 已经过去了" in reply and "示例：跟进 华为 已报价 阶段:报价 预计:12-20" in reply
    [reply] = await bot.say("跟进 阿里 催款 预计:不知道", user="李四")
    assert "预计「不知道」不认识" in reply


async def test_an_admin_named_only_in_salesbot_admins_reads_the_numbers_and_is_not_counted_in_them(
    bot, db: Database, clock
) -> None:
    # 老板 is an admin by SALESBOT_ADMINS alone: no lead role in the team, no flag in the database.
    clock.set_local("2026-11-23 09:00")
    await bot.join("张三", "李四", "老板")
    clock.set_local("2026-11-24 09:10")
    await bot.say("晨会 拜访客户", user="张三")
    await bot.say("晨会 写方案", user="李四")
    await bot.say("认领 华为", user="李四")
    clock.set_local("2026-11-24 18:00")
    [digest] = texts(await run_job(db, "digest", clock.now))
    assert "🗣 晨会参与率：100%（不含主管和请假）" in digest  # 2 of 2 reps; 老板 is not a third
    assert "💤 没有跟进和新客户：张三\n" in f"{digest}\n"
    clock.set_local("2026-11-27 17:00")
    [retro] = texts(await run_job(db, "retro", clock.now))
    assert "🗣 晨会参与率：20%" in retro  # 2 answers of 2 reps × 5 days
