"""Migrating monthly targets to period targets: old rows become month periods and keep who set them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from storage import migrate
from storage.database import Database
from tests.db_helpers import insert_rows

T0 = datetime(2026, 11, 1, 2, 0)


async def _rows(db: Database, sql: str) -> list[tuple]:
    async with db.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql))).all()]


async def test_monthly_targets_become_month_periods_and_a_reps_own_stays_theirs(db) -> None:  # type: ignore[no-untyped-def]
    await migrate.downgrade(db.engine, "base")
    await migrate.upgrade(db.engine, "0014_deal_credits")
    org = {"id": 1, "platform": "console", "corp_key": "console", "name": "公司", "timezone": "Asia/Shanghai",
           "created_at": T0}
    team = {"id": 1, "org_id": 1, "chat_id": "g1", "name": "一组", "help_seq": 0, "max_active_customers": 50,
            "daily_claim_limit": None, "cooldown_days": 7, "settings": "{}", "created_at": T0}
    members = [
        {"id": i, "org_id": 1, "user_id": uid, "name": name, "is_admin": False, "active": True, "created_at": T0}
        for i, uid, name in ((1, "zhang", "张三"), (2, "boss", "老板"))
    ]
    goal = {"org_id": 1, "team_id": 1, "metric": "won_amount", "updated_at": T0}
    await insert_rows(db, {"organisations": [org], "teams": [team], "members": members, "goals": [
        {**goal, "id": 1, "member_id": 1, "month": "2026-11", "target": 100_000_000, "set_by_id": 2},
        {**goal, "id": 2, "member_id": 1, "month": "2026-12", "target": 5_000_000, "set_by_id": 1},
        {**goal, "id": 3, "member_id": None, "month": "2026-11", "target": 300_000_000, "set_by_id": 2,
         "metric": "new_customers"},
    ]})
    await migrate.upgrade(db.engine, "0015_goal_periods")
    assert await _rows(db, "SELECT id, member_id, period, metric, target, set_by_role FROM goals ORDER BY id") == [
        (1, 1, "2026-11", "won_amount", 100_000_000, "lead"),  # the lead's: a rep may not overwrite it
        (2, 1, "2026-12", "won_amount", 5_000_000, "rep"),  # set by 张三 himself
        (3, None, "2026-11", "new_customers", 300_000_000, "lead"),
    ]
    # Targets the old schema cannot hold go on the way down; month targets come back as they were.
    await insert_rows(db, {"goals": [
        {**goal, "id": 4, "member_id": 1, "period": "2027Q1", "target": 1, "set_by_id": 2, "set_by_role": "lead"},
        {**goal, "id": 5, "member_id": 1, "period": "2026-W48", "target": 1, "set_by_id": 2, "set_by_role": "lead"},
        {**goal, "id": 6, "member_id": 1, "period": "2026-11", "target": 20, "set_by_id": 2, "set_by_role": "lead",
         "metric": "followups"},
    ]})
    await migrate.downgrade(db.engine, "0014_deal_credits")
    assert await _rows(db, "SELECT id, month, metric FROM goals ORDER BY id") == [
        (1, "2026-11", "won_amount"), (2, "2026-12", "won_amount"), (3, "2026-11", "new_customers"),
    ]
    await migrate.upgrade(db.engine)  # and up to head again, so the fixture's database is whole
    assert [r[0] for r in await _rows(db, "SELECT set_by_role FROM goals ORDER BY id")] == ["lead", "rep", "lead"]
