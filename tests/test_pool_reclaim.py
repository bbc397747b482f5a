"""The public-pool reclaim, its warning three days before, and help escalation to the lead."""

from __future__ import annotations

from sqlalchemy import select

from storage.database import Database
from storage.models import AuditLog, Customer, Deal
from tests.schedule_helpers import outbox, run_job, texts


async def _customer(db: Database, name: str) -> Customer:
    async with db.session() as s:
        return (await s.execute(select(Customer).where(Customer.name == name))).scalar_one()


async def test_an_idle_customer_is_warned_once_then_goes_back_to_the_pool(bot, db: Database, clock) -> None:
    clock.set_local("2026-10-28 10:00")
    await bot.say("认领 华为", user="张三")
    await bot.say("认领 阿里", user="李四")
    clock.set_local("2026-11-01 10:00")
    await bot.say("认领 腾讯", user="张三")

    clock.set_local("2026-11-24 08:30")  # 华为 is 26.9 days idle: nothing yet
    assert (await run_job(db, "reclaim", clock.now)).pushes == []

    clock.set_local("2026-11-25 08:30")  # 27.9 days: warned, 3 days before
    [warning] = texts(await run_job(db, "reclaim", clock.now))
    assert "公海预警" in warning and "@张三：华为" in warning and "@李四：阿里" in warning and "腾讯" not in warning

    clock.set_local("2026-11-26 08:30")
    await bot.say("跟进 阿里 电话沟通了需求", user="李四")  # a follow-up keeps 阿里
    assert (await run_job(db, "reclaim", clock.now)).pushes == []  # no second warning

    clock.set_local("2026-11-28 08:30")  # 30.9 days: back to the pool
    result = await run_job(db, "reclaim", clock.now)
    [reclaimed] = texts(result)
    assert "退回公海" in reclaimed and "@张三：华为" in reclaimed and "阿里" not in reclaimed
    huawei = await _customer(db, "华为")
    assert huawei.owner_id is None and huawei.released_at is not None
    async with db.session() as s:  # its deal stays open, for whoever claims it next
        assert (await s.execute(select(Deal.status).where(Deal.customer_id == huawei.id))).scalar_one() == "open"
    assert (await _customer(db, "阿里")).owner_id is not None
    async with db.session() as s:
        audit = (await s.execute(select(AuditLog).where(AuditLog.action == "reclaim"))).scalars().all()
    assert [a.entity_id for a in audit] == [huawei.id] and audit[0].before["owner"] is not None
    [reply] = await bot.say("认领 华为", user="李四")
    assert "认领成功" in reply or "公海" in reply

    clock.set_local("2026-11-29 08:30")  # 腾讯 crosses 27 days
    [warning] = texts(await run_job(db, "reclaim", clock.now))
    assert "@张三：腾讯" in warning and "华为" not in warning


async def test_the_pool_period_is_a_team_setting(bot, db: Database, clock) -> None:
    clock.set_local("2026-11-01 10:00")
    await bot.say("认领 华为", user="张三")
    [reply] = await bot.say("设置 公海 10天", user="老板")
    assert "10 天" in reply
    clock.set_local("2026-11-11 10:30")
    [text] = texts(await run_job(db, "reclaim", clock.now))
    assert "超过 10 天" in text and (await _customer(db, "华为")).owner_id is None


async def test_a_help_request_nobody_takes_is_raised_to_the_lead_after_four_working_hours(
    bot, db: Database, clock
) -> None:
    await bot.join("李四")  # they speak in the group before they are @-ed
    clock.set_local("2026-11-27 08:00")
    await bot.say("设置 主管 @李四", user="老板")
    clock.set_local("2026-11-27 16:00")  # Friday afternoon
    await bot.say("求助 需要一份报价模板", user="张三")
    clock.set_local("2026-11-27 20:00")
    assert (await run_job(db, "escalation", clock.now)).pushes == []  # only 2 working hours so far
    clock.set_local("2026-11-30 10:59")
    assert (await run_job(db, "escalation", clock.now)).pushes == []
    clock.set_local("2026-11-30 11:00")
    [text] = texts(await run_job(db, "escalation", clock.now))
    assert "求助 #1" in text and "@李四" in text and "4 个工作小时" in text
    assert (await run_job(db, "escalation", clock.now)).pushes == []  # once
    assert len([r for r in await outbox(db) if r.dedup_key and r.dedup_key.startswith("escalation:")]) == 1


async def test_a_taken_request_is_not_escalated(bot, db: Database, clock) -> None:
    clock.set_local("2026-11-27 09:00")
    await bot.say("求助 需要一份报价模板", user="张三")
    await bot.say("接 #1", user="李四")
    clock.set_local("2026-11-27 17:00")
    assert (await run_job(db, "escalation", clock.now)).pushes == []


async def test_the_minute_tick_escalates_an_untaken_request(bot, db: Database, clock) -> None:
    """Through the scheduler's tick (which only looks at teams with an open request), not `run_job`."""
    from schedules.scheduler import Scheduler

    clock.set_local("2026-11-30 08:00")
    await bot.say("设置 主管 @李四", user="老板")
    await bot.say("求助 需要一份报价模板", user="张三")
    clock.set_local("2026-11-30 12:59")  # the working day starts at 09:00: due at 13:00
    scheduler = Scheduler(db, clock=lambda: clock.now)
    assert [f for f in await scheduler.tick() if f.job == "escalation"] == []
    clock.set_local("2026-11-30 13:00")
    [fired] = [f for f in await scheduler.tick() if f.job == "escalation"]
    assert "求助 #1" in fired.pushes[0].message.text
    clock.set_local("2026-12-01 09:00")
    await bot.say("求助 客户要一份案例", user="张三")
    await bot.say("接 2", user="王五")  # taken: nothing open in the team any more
    clock.set_local("2026-12-01 14:00")
    assert [f for f in await scheduler.tick() if f.job == "escalation"] == []
