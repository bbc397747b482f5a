"""Migrating to deal credits (0014): existing wins are credited to their owner in full, and the history
0010 synthesised is completed so that a past pipeline rebuilt from it matches what was recorded."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from storage import migrate
from storage.database import Database
from storage.ledger import StageTotal, period_wins, pipeline_at
from tests.db_helpers import insert_rows
from tests.test_migration_deals import T1, T2, _all, _seed_at_0005

T3 = datetime(2026, 11, 12, 2, 0)  # 华为's amount raised, with no stage change


async def _ledger(db: Database, fn):  # type: ignore[no-untyped-def]
    async with db.transaction() as store:
        org = await store.get_org("console", "console")
        store.bind_team(org, await store.get_team(org, "g1"))
        return await fn(store)


def _at(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


async def test_existing_wins_are_credited_and_the_past_pipeline_is_rebuilt_from_completed_history(db) -> None:  # type: ignore[no-untyped-def]
    await _seed_at_0005(db)
    followup = {
        "id": 3, "org_id": 1, "team_id": 1, "customer_id": 1, "author_id": 1, "content": "加了需求",
        "stage_before": None, "stage_after": None, "amount_fen": 8_000_000, "next_on": None, "created_at": T3,
    }
    await insert_rows(db, {"followups": [followup]})
    async with db.engine.begin() as conn:  # as the follow-up left the customer
        await conn.execute(text("UPDATE customers SET amount_fen = 8000000 WHERE id = 1"))
    await migrate.upgrade(db.engine, "0013_name_key_version")
    assert await _all(db, "SELECT count(*) FROM deal_events WHERE kind = 'amount'") == [(0,)]
    await migrate.upgrade(db.engine, "0014_deal_credits")
    credits = await _all(db, "SELECT d.customer_id, c.member_id, c.amount_fen, c.share_bp FROM deal_credits c "
                             "JOIN deals d ON d.id = c.deal_id")
    assert credits == [(2, 1, 9_000_000, 10000)]
    events = await _all(db, "SELECT kind, amount_fen FROM deal_events WHERE customer_id = 1 ORDER BY created_at, id")
    assert events == [("opened", None), ("stage", 5_000_000), ("amount", 8_000_000)]
    await migrate.upgrade(db.engine)  # the ORM's models are head's (later revisions add columns they read)
    wins = await _ledger(db, lambda store: period_wins(store, _at(T1), _at(T3)))
    assert (wins.count, wins.fen, wins.by_member[1].fen) == (1, 9_000_000, 9_000_000)
    before_raise = await _ledger(db, lambda store: pipeline_at(store, _at(T2).replace(hour=3)))  # 腾讯 won at T2
    after_raise = await _ledger(db, lambda store: pipeline_at(store, _at(T3).replace(hour=3)))
    assert before_raise == {"报价": StageTotal(1, 5_000_000)}
    assert after_raise == {"报价": StageTotal(1, 8_000_000)}
    await migrate.downgrade(db.engine, "0013_name_key_version")
    await migrate.upgrade(db.engine)  # up again: nothing doubled
    assert await _all(db, "SELECT count(*) FROM deal_events WHERE kind = 'amount'") == [(1,)]
    assert await _all(db, "SELECT count(*) FROM deal_credits") == [(1,)]
