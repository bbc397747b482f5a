"""Customers stored under an older 撞单 key get the new one at start-up, once per key version."""

from __future__ import annotations

from sqlalchemy import func, select, update

from bot.assembly import prepare_database
from handlers.names import NAME_KEY_VERSION
from storage.database import Database
from storage.models import AuditLog, Customer, Organisation


async def _as_keyed_before(db: Database, old_keys: dict[str, str]) -> None:
    """Make the database look as the previous release left it: these names under their old keys, the
    organisations' keys of version 0."""
    async with db.transaction() as store:
        for name, key in old_keys.items():
            await store.session.execute(update(Customer).where(Customer.name == name).values(norm_name=key))
        await store.session.execute(update(Organisation).values(name_key_version=0))


async def _customers(db: Database) -> dict[str, tuple[str, int | None]]:
    async with db.session() as s:
        rows = await s.execute(select(Customer.name, Customer.norm_name, Customer.duplicate_of_id))
        return {name: (key, dup) for name, key, dup in rows.all()}


async def _count(db: Database, action: str) -> int:
    async with db.session() as s:
        query = select(func.count()).select_from(AuditLog).where(AuditLog.action == action)
        return (await s.execute(query)).scalar_one()


async def test_an_old_key_is_rekeyed_so_another_team_claim_is_refused_as_a_clash(make_bot, db) -> None:
    one, two = make_bot(team="销售一组"), make_bot(team="销售二组")
    await one.say("认领 江门华为有限公司", user="张三")
    await one.say("认领 字節跳動有限公司", user="张三")
    await _as_keyed_before(db, {"江门华为有限公司": "江门华为", "字節跳動有限公司": "字節跳動"})

    await prepare_database(db)  # what serve and chat start with

    assert await _customers(db) == {"江门华为有限公司": ("华为", None), "字節跳動有限公司": ("字节跳动", None)}
    [reply] = await two.say("认领 华为有限公司", user="李四")
    assert "撞单" in reply and "@张三" in reply and "销售一组" in reply
    [reply] = await two.say("认领 字节跳动", user="李四")
    assert "撞单" in reply and "@张三" in reply
    assert await _count(db, "rekey") == 2
    async with db.session() as s:
        audit = (await s.execute(select(AuditLog).where(AuditLog.action == "rekey").order_by(AuditLog.id))).scalars()
        first = next(iter(audit))
    assert first.before == {"norm_name": "江门华为", "duplicate_of": None}
    assert first.after == {"norm_name": "华为", "duplicate_of": None}


async def test_two_old_rows_meeting_on_one_key_mark_the_younger_a_duplicate_for_its_lead(make_bot, db) -> None:
    one, two = make_bot(team="销售一组"), make_bot(team="销售二组")
    await one.say("认领 江门华为有限公司", user="张三")
    await _as_keyed_before(db, {"江门华为有限公司": "江门华为"})
    await two.say("认领 華為有限公司 确认", user="李四")
    await _as_keyed_before(db, {"華為有限公司": "華為"})
    await two.join("王五")
    await two.say("设置 主管 @王五", user="老板")

    await prepare_database(db)

    customers = await _customers(db)
    async with db.session() as s:
        older = (await s.execute(select(Customer.id).where(Customer.name == "江门华为有限公司"))).scalar_one()
    assert customers == {"江门华为有限公司": ("华为", None), "華為有限公司": ("华为", older)}
    [mine] = await two.say("我的", user="王五")
    assert "可能重复" in mine and "華為有限公司 ↔ 江门华为有限公司（销售一组）" in mine
    [reply] = await make_bot(team="销售三组").say("认领 华为", user="孙七")  # a third team meets the original
    assert "撞单" in reply and "@张三" in reply and "销售一组" in reply
    assert await _count(db, "rekey") == 2


async def test_two_rows_of_one_team_keep_the_younger_key_and_mark_it(make_bot, db) -> None:
    one = make_bot(team="销售一组")
    await one.say("认领 江门华为有限公司", user="张三")
    await _as_keyed_before(db, {"江门华为有限公司": "江门华为"})
    await one.say("认领 華為有限公司 确认", user="赵六")
    await _as_keyed_before(db, {"華為有限公司": "華為"})

    await prepare_database(db)

    customers = await _customers(db)
    async with db.session() as s:
        older = (await s.execute(select(Customer.id).where(Customer.name == "江门华为有限公司"))).scalar_one()
    assert customers == {"江门华为有限公司": ("华为", None), "華為有限公司": ("華為", older)}
    [reply] = await one.say("认领 华为有限公司", user="孙七")
    assert "撞单" in reply and "@张三" in reply


async def test_a_second_start_does_nothing_and_a_new_organisation_starts_current(make_bot, db) -> None:
    one = make_bot(team="销售一组")
    await one.say("认领 江门华为有限公司", user="张三")
    await _as_keyed_before(db, {"江门华为有限公司": "江门华为"})
    await prepare_database(db)
    async with db.transaction() as store:  # the version is stored: the next start finds nothing to do
        assert await store.stale_name_key_orgs(NAME_KEY_VERSION) == []

    await prepare_database(db)
    assert await _count(db, "rekey") == 1

    db.name_key_version = NAME_KEY_VERSION  # as bot.assembly.open_database sets it
    await make_bot(team="其他组", org="another").say("认领 腾讯", user="钱八")
    async with db.session() as s:
        versions = (await s.execute(select(Organisation.corp_key, Organisation.name_key_version))).all()
    assert dict(versions) == {"console": NAME_KEY_VERSION, "another": NAME_KEY_VERSION}
