"""Finished delivery bookkeeping (inbound dedup rows, sent/failed outbox rows) is forgotten after the
retention period; nothing a user or a report reads is touched, and nothing unfinished is."""

from __future__ import annotations

import io
from datetime import timedelta

from sqlalchemy import select

from bot.adapters.console import ConsoleDeliverer
from bot.delivery import OutgoingMessage
from bot.outbox import OutboxWorker
from schedules.scheduler import Scheduler
from storage.database import Database
from storage.models import AuditLog, Customer, InboundMessage, OutboxMessage, Team
from tests.db_helpers import count


async def _queue(db: Database, platform: str, text: str, now) -> None:  # type: ignore[no-untyped-def]
    async with db.transaction() as store:
        team = (await store.session.execute(select(Team))).scalars().first()
        org = await store.get_org("console", "console")
        assert team is not None and org is not None
        store.bind_team(org, team)
        await store.enqueue(platform=platform, destination={"kind": "team", "chat_id": team.chat_id},
                            dest_key=f"{platform}:{text}", body=OutgoingMessage(text).to_json(), now=now)


async def test_month_old_bookkeeping_goes_and_everything_else_stays(bot, db: Database, clock) -> None:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    clock.set_local("2026-09-01 10:00")
    await bot.say("认领 北京华为技术有限公司", user="张三")
    old = clock.now
    worker = OutboxWorker(db, {"console": ConsoleDeliverer(out)}, clock=lambda: clock.now)
    await _queue(db, "console", "九月的站会提醒", old)  # will be sent
    await _queue(db, "nowhere", "发不出去的消息", old)  # no deliverer: failed
    await worker.run_once()
    await _queue(db, "console", "还没发出的消息", old + timedelta(days=400))  # due later: still pending

    clock.set_local("2026-10-15 10:00")  # 44 days later
    await bot.say("跟进 华为 十月拜访", user="张三")
    await _queue(db, "console", "十月的站会提醒", clock.now)
    await worker.run_once()
    audits, customers = await count(db, AuditLog), await count(db, Customer)

    scheduler = Scheduler(db, clock=lambda: clock.now, retention_days=30)
    removed = await scheduler.housekeeping()
    assert removed is not None and removed["outbox"] == 2 and removed["inbound_messages"] >= 1

    async with db.session() as session:
        left = sorted((r.status, r.body["text"]) for r in (await session.execute(select(OutboxMessage))).scalars())
        inbound = (await session.execute(select(InboundMessage.received_at))).scalars().all()
    assert left == [("pending", "还没发出的消息"), ("sent", "十月的站会提醒")]
    assert inbound and all(at >= clock.now - timedelta(days=30) for at in inbound)
    assert (await count(db, AuditLog), await count(db, Customer)) == (audits, customers)

    assert await scheduler.housekeeping() is None  # once a day
    clock.advance(days=1)
    assert await scheduler.housekeeping() == {"outbox": 0, "inbound_messages": 0, "chart_images": 0}


async def test_rows_younger_than_the_retention_are_kept(bot, db: Database, clock) -> None:  # type: ignore[no-untyped-def]
    clock.set_local("2026-09-01 10:00")
    await bot.say("我的", user="张三")
    before = await count(db, InboundMessage)
    early = await db.prune_bookkeeping(clock.now + timedelta(days=10), keep_days=30)
    assert early == {"outbox": 0, "inbound_messages": 0, "chart_images": 0}
    removed = await db.prune_bookkeeping(clock.now + timedelta(days=31), keep_days=30)
    assert removed["inbound_messages"] == before and await count(db, InboundMessage) == 0


async def test_old_chart_images_go_with_the_bookkeeping(bot, db: Database, clock) -> None:  # type: ignore[no-untyped-def]
    """The retro's pictures behind DingTalk image links (storage.charts) are kept as long as the rest."""
    from storage.charts import chart_image, save_chart_image

    clock.set_local("2026-09-01 10:00")
    await bot.say("我的", user="张三")
    async with db.transaction() as store:
        org = await store.get_org("console", "console")
        team = await store.get_team(org, "销售一组")
        assert team is not None
        await save_chart_image(store, "old-chart-0123456789", team.id, b"\x89PNG old", clock.now)
        await save_chart_image(store, "new-chart-0123456789", team.id, b"\x89PNG new", clock.now + timedelta(days=20))
    removed = await db.prune_bookkeeping(clock.now + timedelta(days=31), keep_days=30)
    assert removed["chart_images"] == 1
    async with db.transaction() as store:
        assert await chart_image(store, "old-chart-0123456789") is None
        assert await chart_image(store, "new-chart-0123456789") == b"\x89PNG new"


def test_salesbot_db_prune_on_the_command_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.test_cli_and_serve import run_cli

    url = f"sqlite:///{tmp_path}/bot.db"
    assert run_cli("chat", "--db", url, stdin="认领 小米科技\n").returncode == 0
    result = run_cli("db", "prune", "--days", "30", "--db", url)
    assert result.returncode == 0, result.stderr
    assert "消息去重 0 条" in result.stdout and "审计日志和业务数据不受影响" in result.stdout
    kept = run_cli("db", "prune", "--days", "0", "--db", url)
    assert kept.returncode == 0 and "不清理" in kept.stdout
