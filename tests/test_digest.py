"""The manager daily digest, checked against a seeded team with known numbers."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

from bot.assembly import all_settings
from bot.messages import IncomingMessage
from bot.router import Router
from handlers import all_commands
from handlers.reports import GoalProgress, manager_digest, progress_bar
from storage.database import Database
from storage.reports import DigestNumbers
from tests.schedule_helpers import outbox, plain, run_job, texts


async def _seed(bot, clock) -> None:  # type: ignore[no-untyped-def]
    clock.set_local("2026-10-30 10:00")
    await bot.say("认领 旧客户", user="王五")  # 28 days idle by the digest: 2 days left
    clock.set_local("2026-11-25 10:00")
    await bot.say("求助 需要一份报价模板", user="李四")  # open for 56 hours
    clock.set_local("2026-11-26 15:00")
    await bot.say("认领 昨天的客户", user="张三")  # yesterday: not in today's digest
    clock.set_local("2026-11-27 09:30")
    await bot.say("认领 华为", user="张三")
    await bot.say("认领 腾讯", user="张三")
    await bot.say("跟进 华为 拜访了采购 阶段:报价", user="张三")
    await bot.say("认领 阿里", user="李四")
    await bot.say("赢单 阿里 100万", user="李四")
    await bot.say("赢单 腾讯 20万", user="张三")
    await bot.say("求助 今天的求助", user="张三")  # not 24 h old


async def test_the_digest_shows_the_days_numbers(bot, db: Database, clock) -> None:
    await _seed(bot, clock)
    clock.set_local("2026-11-27 18:00")
    [digest] = texts(await run_job(db, "digest", clock.now))
    assert "销售一组 日报 · 11月27日 周五" in digest
    assert "认领 3 · 跟进 3 · 赢单 2" in digest
    assert "· 张三：认领 2，跟进 2" in digest and "· 李四：认领 1，跟进 1" in digest
    assert "华为：线索 → 报价" in digest and "腾讯：线索 → 赢单" in digest
    assert "🎉 赢单 2 个 · 120万" in digest and "· 阿里 100万 · 李四" in digest and "· 腾讯 20万 · 张三" in digest
    assert "商机 3 个 · 0元（较本周一 ↑2个）" in digest and "· 报价 1 个 ↑1" in digest
    assert "💤 没有跟进和新客户：王五" in digest
    assert "超过 24 小时未解决的求助 1 个" in digest and "#1 需要一份报价模板（李四，56 小时，待接）" in digest
    assert "今天的求助" not in digest
    assert "3 天内将退回公海 1 个" in digest and "旧客户（王五，28 天未跟进，还剩 2 天）" in digest
    assert "昨天的客户" not in digest and "目标" not in digest


async def test_on_the_console_the_digest_goes_to_the_group(bot, db: Database, clock) -> None:
    await _seed(bot, clock)
    clock.set_local("2026-11-27 18:00")
    await run_job(db, "digest", clock.now)
    [row] = [r for r in await outbox(db) if r.dedup_key and r.dedup_key.startswith("digest:")]
    assert row.destination["kind"] == "team" and row.dest_key == f"team:{row.team_id}"
    assert "日报" in plain(row.body)


async def test_on_wecom_each_lead_gets_the_digest_as_a_direct_message(db: Database, clock) -> None:
    db.admin_entries = ("boss",)
    router = Router(db, all_commands(), settings_table=all_settings(), clock=clock)

    async def say(text: str, user: str) -> None:
        await router.handle(
            IncomingMessage(platform="wecom", org_key="corp1", chat_id="chat-1", chat_title="华东组", user_id=user,
                            user_name=user, text=text, msg_id=f"{user}-{text}-{clock.now.isoformat()}")
        )

    clock.set_local("2026-11-27 10:00")
    await say("认领 华为", "zhangsan")
    await say("帮助", "lisi")
    await say("帮助", "wangwu")
    await say("设置 主管 @lisi", "boss")
    await say("设置 主管 @wangwu", "boss")
    clock.set_local("2026-11-27 18:00")
    result = await run_job(db, "digest", clock.now, team="华东组")
    assert [p.destination for p in result.pushes] == [
        {"kind": "member", "user_ids": ["lisi"]},
        {"kind": "member", "user_ids": ["wangwu"]},
    ]
    rows = [r for r in await outbox(db) if r.dedup_key and r.dedup_key.startswith("digest:")]
    assert len(rows) == 2 and {r.platform for r in rows} == {"wecom"}
    assert all(r.dest_key.startswith("member:") for r in rows)


def test_goal_progress_is_shown_only_when_goals_exist() -> None:
    from datetime import date, datetime

    empty = DigestNumbers({}, [], {})
    now = datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert "目标" not in manager_digest("一组", date(2026, 11, 27), empty, now, pool_days=30).text
    text = manager_digest(
        "一组", date(2026, 11, 27), empty, now, pool_days=30,
        goals=[
            GoalProgress("张三 成交额", Decimal(600000), Decimal(1000000), "元"),
            GoalProgress("新客户", 3, 12, "个"),
        ],
    ).text
    assert (
        "🎯 本月目标" in text
        and "张三 成交额 ▓▓▓▓▓▓░░░░ 60% 60万/100万" in text
        and "新客户 ▓▓░░░░░░░░ 25% 3/12个" in text
    )
    assert progress_bar(5, 0) == "░░░░░░░░░░ 0%" and progress_bar(15, 10) == "▓▓▓▓▓▓▓▓▓▓ 150%"
