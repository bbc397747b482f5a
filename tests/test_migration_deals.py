"""Migrating existing rows: each customer becomes one deal with its stage, amount, status and history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from storage import migrate
from storage.database import Database
from tests.db_helpers import insert_rows

T0 = datetime(2026, 11, 1, 2, 0)
T1 = datetime(2026, 11, 5, 2, 0)
T2 = datetime(2026, 11, 9, 2, 0)


async def _seed_at_0005(db: Database) -> None:
    await migrate.downgrade(db.engine, "base")
    await migrate.upgrade(db.engine, "0005_collaborator_member_index")
    rows = {
        "organisations": [
            {
                "id": 1,
                "platform": "console",
                "corp_key": "console",
                "name": "公司",
                "timezone": "Asia/Shanghai",
                "created_at": T0,
            }
        ],
        "teams": [
            {
                "id": 1,
                "org_id": 1,
                "chat_id": "g1",
                "name": "一组",
                "help_seq": 0,
                "max_active_customers": 50,
                "daily_claim_limit": None,
                "cooldown_days": 7,
                "settings": "{}",
                "created_at": T0,
            }
        ],
        "members": [
            {
                "id": 1,
                "org_id": 1,
                "user_id": "zhang",
                "name": "张三",
                "is_admin": False,
                "active": True,
                "created_at": T0,
            }
        ],
        "customers": [
            {
                "id": 1,
                "org_id": 1,
                "team_id": 1,
                "name": "华为",
                "norm_name": "华为",
                "owner_id": 1,
                "stage": "报价",
                "amount_fen": 5_000_000,
                "status": "active",
                "claimed_at": T0,
                "last_activity_at": T1,
                "closed_at": None,
                "created_at": T0,
            },
            {
                "id": 2,
                "org_id": 1,
                "team_id": 1,
                "name": "腾讯",
                "norm_name": "腾讯",
                "owner_id": 1,
                "stage": "赢单",
                "amount_fen": 9_000_000,
                "status": "won",
                "claimed_at": T0,
                "last_activity_at": T2,
                "closed_at": T2,
                "created_at": T0,
            },
            {
                "id": 3,
                "org_id": 1,
                "team_id": 1,
                "name": "小米",
                "norm_name": "小米",
                "owner_id": None,
                "stage": "输单",
                "amount_fen": None,
                "status": "lost",
                "claimed_at": None,
                "last_activity_at": T1,
                "closed_at": T1,
                "created_at": T0,
            },
        ],
        "followups": [
            {
                "id": 1,
                "org_id": 1,
                "team_id": 1,
                "customer_id": 1,
                "author_id": 1,
                "content": "报价了",
                "stage_before": "线索",
                "stage_after": "报价",
                "amount_fen": 5_000_000,
                "next_on": None,
                "created_at": T1,
            },
            {
                "id": 2,
                "org_id": 1,
                "team_id": 1,
                "customer_id": 2,
                "author_id": 1,
                "content": "赢单",
                "stage_before": "线索",
                "stage_after": "赢单",
                "amount_fen": 9_000_000,
                "next_on": None,
                "created_at": T2,
            },
        ],
    }
    await insert_rows(db, rows)


async def _all(db: Database, sql: str) -> list[tuple]:
    async with db.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql))).all()]


async def test_customers_become_deals_with_their_history_and_come_back_on_downgrade(db) -> None:  # type: ignore[no-untyped-def]
    await _seed_at_0005(db)
    await migrate.upgrade(db.engine, "0010_deals")
    deals = await _all(
        db, "SELECT customer_id, name, stage, amount_fen, status, closed_at FROM deals ORDER BY customer_id"
    )
    assert [d[:5] for d in deals] == [
        (1, "首单", "报价", 5_000_000, "open"),
        (2, "首单", "赢单", 9_000_000, "won"),
        (3, "首单", "输单", None, "lost"),
    ]
    assert [d[5] is None for d in deals] == [True, False, False]
    assert await _all(
        db, "SELECT f.id, d.customer_id FROM followups f JOIN deals d ON d.id = f.deal_id ORDER BY f.id"
    ) == [(1, 1), (2, 2)]
    events = await _all(
        db, "SELECT customer_id, kind, stage_before, stage_after, amount_fen FROM deal_events ORDER BY customer_id, id"
    )
    assert events == [
        (1, "opened", None, "线索", None),
        (1, "stage", "线索", "报价", 5_000_000),
        (2, "opened", None, "线索", None),
        (2, "won", None, "赢单", 9_000_000),
        (3, "opened", None, "线索", None),
        (3, "lost", None, "输单", None),
    ]
    await migrate.downgrade(db.engine, "0005_collaborator_member_index")
    customers = await _all(db, "SELECT id, stage, amount_fen, status FROM customers ORDER BY id")
    assert customers == [(1, "报价", 5_000_000, "active"), (2, "赢单", 9_000_000, "won"), (3, "输单", None, "lost")]
    closed = await _all(db, "SELECT id, closed_at IS NULL FROM customers ORDER BY id")
    assert [bool(c[1]) for c in closed] == [True, False, False]
    await migrate.upgrade(db.engine)  # and up to head again, so the fixture's database is whole
