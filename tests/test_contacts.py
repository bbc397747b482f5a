"""联系人 as reps add them: shown on 客户, updated by name, and a phone already on another customer flagged."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import AuditLog, Contact


async def test_a_contact_is_added_and_shown_on_the_customer_card(bot, db) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    [reply] = await bot.say("联系人 华为 王强 采购总监 138-0013-8000 wxid_wangqiang", user="张三")
    assert "已添加「北京华为技术有限公司」的联系人：王强（采购总监 · 138-0013-8000 · 微信 wxid_wangqiang）" in reply
    [card] = await bot.say("客户 华为", user="张三")
    assert "联系人：王强（采购总监 · 138-0013-8000 · 微信 wxid_wangqiang）" in card
    [reply] = await bot.say("/contact 华为 王强 采购副总裁", user="张三")
    assert "已更新" in reply and "采购副总裁" in reply
    [listing] = await bot.say("联系人 华为", user="张三")
    assert "· 王强（采购副总裁 · 138-0013-8000 · 微信 wxid_wangqiang）" in listing
    async with db.session() as s:
        assert len((await s.execute(select(Contact))).scalars().all()) == 1
        actions = [(a.action, a.msg_id is not None) for a in (await s.execute(select(AuditLog))).scalars()]
    assert ("add_contact", True) in actions and ("update_contact", True) in actions


async def test_a_phone_already_on_another_customer_is_flagged_with_that_customer_and_owner(bot) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    await bot.say("联系人 华为 王强 采购总监 13800138000", user="张三")
    await bot.say("认领 深圳市海思半导体有限公司", user="李四")
    [reply] = await bot.say("联系人 海思 王总 +86-138-0013-8000", user="李四")
    assert "⚠️ 电话 +86-138-0013-8000 也是「北京华为技术有限公司」（负责人 @张三）的联系人「王强」" in reply


async def test_only_the_owner_collaborators_and_leads_add_contacts(bot) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    [reply] = await bot.say("联系人 华为 王强 13800138000", user="李四")
    assert "只有「北京华为技术有限公司」的负责人、协作人和主管可以添加联系人" in reply
    [reply] = await bot.say("联系人 华为", user="李四")
    assert "还没有联系人" in reply


async def test_contacts_travel_in_the_customer_export_and_import(bot, db, clock, tmp_path) -> None:
    from openpyxl import load_workbook
    from sqlalchemy import delete

    from bot.cli_sheets import run_export, run_import
    from storage.models import Base
    from tests.test_excel_io import _args

    await bot.say("认领 北京华为技术有限公司", user="张三")
    await bot.say("联系人 华为 王强 采购总监 13800138000 wxid_wangqiang", user="张三")
    await bot.say("联系人 华为 李梅 财务", user="张三")
    out = tmp_path / "customers.xlsx"
    code, _ = await run_export(db, _args("export", "customers", "--team", "销售一组", "--out", str(out)), clock.now)
    assert code == 0
    sheet = load_workbook(out).active
    headers = [c.value for c in sheet[1]]
    assert sheet[2][headers.index("联系人")].value == "王强 采购总监 13800138000 wxid_wangqiang；李梅 财务"
    async with db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(delete(table))
    code, report = await run_import(db, _args("import", "customers", str(out), "--team", "销售一组"), clock.now)
    assert code == 0 and "已导入 1 个客户" in report
    async with db.session() as s:
        rows = (await s.execute(select(Contact).order_by(Contact.id))).scalars().all()
    assert [(c.name, c.title, c.phone, c.wechat) for c in rows] == [
        ("王强", "采购总监", "13800138000", "wxid_wangqiang"), ("李梅", "财务", None, None)
    ]
