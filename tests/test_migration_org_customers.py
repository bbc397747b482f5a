"""Migrating to organisation-wide customers: a customer two teams both hold is kept and marked, its lead
sees it, and 合并 makes one record of the two."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text

from handlers.names import normalise_company_name
from storage import migrate
from storage.database import Database
from storage.models import AuditLog, Collaborator, Contact, Customer, Deal, FollowUp, Member
from tests.db_helpers import insert_rows

T0 = datetime(2026, 11, 1, 2, 0)
T1 = datetime(2026, 11, 20, 2, 0)


def _customer(id_: int, team: int, name: str, owner: int, stage: str) -> dict[str, object]:
    return {
        "id": id_,
        "org_id": 1,
        "team_id": team,
        "name": name,
        "norm_name": normalise_company_name(name),
        "owner_id": owner,
        "stage": stage,
        "amount_fen": None,
        "status": "active",
        "claimed_at": T0,
        "last_activity_at": T1,
        "created_at": T0,
    }


async def _seed_two_teams_holding_one_company(db: Database) -> None:
    await migrate.downgrade(db.engine, "base")
    await migrate.upgrade(db.engine, "0005_collaborator_member_index")
    team = {"help_seq": 0, "max_active_customers": 50, "cooldown_days": 7, "settings": "{}", "created_at": T0}
    member = {"org_id": 1, "is_admin": False, "active": True, "created_at": T0}
    rows: dict[str, list[dict[str, object]]] = {
        "organisations": [
            {
                "id": 1,
                "platform": "console",
                "corp_key": "console",
                "name": "console",
                "timezone": "Asia/Shanghai",
                "created_at": T0,
            },
        ],
        "teams": [
            {"id": 1, "org_id": 1, "chat_id": "销售一组", "name": "销售一组", **team},
            {"id": 2, "org_id": 1, "chat_id": "销售二组", "name": "销售二组", **team},
        ],
        "members": [
            {"id": 1, "user_id": "张三", "name": "张三", **member},
            {"id": 2, "user_id": "李四", "name": "李四", **member},
            {"id": 3, "user_id": "王五", "name": "王五", **member},
            {"id": 4, "user_id": "赵六", "name": "赵六", **member},
        ],
        "memberships": [
            {"team_id": 1, "member_id": 1, "role": "rep", "joined_at": T0},
            {"team_id": 2, "member_id": 2, "role": "rep", "joined_at": T0},
            {"team_id": 2, "member_id": 3, "role": "lead", "joined_at": T0},
            {"team_id": 2, "member_id": 4, "role": "rep", "joined_at": T0},
        ],
        "customers": [
            _customer(1, 1, "北京华为技术有限公司", 1, "报价"),
            _customer(2, 2, "华为技术有限公司", 2, "初访"),
            _customer(3, 2, "小米科技有限责任公司", 2, "线索"),
        ],
        "collaborators": [{"customer_id": 2, "member_id": 4, "added_at": T0}],
        "followups": [
            {
                "id": 1,
                "org_id": 1,
                "team_id": 2,
                "customer_id": 2,
                "author_id": 2,
                "content": "初次拜访",
                "stage_before": "线索",
                "stage_after": "初访",
                "amount_fen": None,
                "created_at": T1,
            },
        ],
    }
    await insert_rows(db, rows)
    await migrate.upgrade(db.engine)


async def test_a_cross_team_duplicate_is_kept_marked_listed_to_its_lead_and_merged(make_bot, db, clock) -> None:
    await _seed_two_teams_holding_one_company(db)
    async with db.session() as s:
        marks = (await s.execute(select(Customer.id, Customer.duplicate_of_id).order_by(Customer.id))).all()
    assert [tuple(m) for m in marks] == [(1, None), (2, 1), (3, None)]
    one, two = make_bot(team="销售一组"), make_bot(team="销售二组")
    [mine] = await two.say("我的", user="王五")
    assert "可能重复" in mine and "华为技术有限公司 ↔ 北京华为技术有限公司（销售一组）" in mine
    [mine] = await two.say("我的", user="李四")  # only the lead is asked to merge
    assert "可能重复" not in mine
    [reply] = await one.say("认领 北京华为技术有限公司", user="孙七")  # new claims see one company
    assert "撞单" in reply and "@张三" in reply
    [reply] = await two.say("联系人 华为 王经理 采购总监 13800138000", user="李四")  # on the duplicate
    assert "王经理" in reply
    [reply] = await two.say("合并 华为 到 华为", user="李四")
    assert "主管" in reply
    [reply] = [r.text for r in await two.send("合并 华为 到 华为", user="王五", msg_id="m-merge")]
    assert "已把「华为技术有限公司」合并到「北京华为技术有限公司」" in reply, reply
    async with db.session() as s:
        customers = (await s.execute(select(Customer.id).order_by(Customer.id))).scalars().all()
        deals = (await s.execute(select(Deal.customer_id, Deal.name, Deal.stage).order_by(Deal.id))).all()
        followups = (await s.execute(select(FollowUp.customer_id))).scalars().all()
        collaborators = (
            (
                await s.execute(
                    select(Member.name)
                    .join(Collaborator, Collaborator.member_id == Member.id)
                    .where(Collaborator.customer_id == 1)
                    .order_by(Member.name)
                )
            )
            .scalars()
            .all()
        )
        audit = (await s.execute(select(AuditLog).where(AuditLog.action == "merge"))).scalar_one()
    assert list(customers) == [1, 3]
    assert [tuple(d) for d in deals] == [(1, "首单", "报价"), (1, "首单（销售二组）", "初访"), (3, "首单", "线索")]
    assert list(followups) == [1]
    assert list(collaborators) == sorted(["李四", "赵六"])
    assert audit.msg_id == "m-merge" and audit.entity_id == 1 and audit.before["id"] == 2
    [card] = await two.say("客户 华为", user="李四")  # the former owner works it on as a collaborator
    assert "北京华为技术有限公司" in card and "商机（2）" in card and "初次拜访" in card
    assert "王经理" in card  # the duplicate's contacts came along
    async with db.session() as s:
        assert (await s.execute(select(Contact.customer_id))).scalars().all() == [1]
    [mine] = await two.say("我的", user="王五")
    assert "可能重复" not in mine


async def test_the_org_migration_goes_down_with_duplicates_in_place(db) -> None:
    await _seed_two_teams_holding_one_company(db)
    await migrate.downgrade(db.engine, "0010_deals")
    async with db.engine.connect() as conn:
        names = (await conn.execute(text("SELECT team_id, name FROM customers ORDER BY id"))).all()
    assert [tuple(n) for n in names] == [
        (1, "北京华为技术有限公司"),
        (2, "华为技术有限公司"),
        (2, "小米科技有限责任公司"),
    ]
    await migrate.upgrade(db.engine)
