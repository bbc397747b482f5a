"""Customers in and out of spreadsheets: import with duplicates, bad rows and odd headers; export; round trip."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from openpyxl import Workbook, load_workbook
from sqlalchemy import delete, func, select

from bot import cli
from bot.cli_sheets import run_export, run_import
from storage.models import Base, Customer, Deal, Member


def _args(*argv: str):  # type: ignore[no-untyped-def]
    return cli.build_parser().parse_args(list(argv))


def _xlsx(path: Path, rows: list[list[object]]) -> Path:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    workbook.save(path)
    return path


async def _customers(db) -> list[tuple]:  # type: ignore[no-untyped-def]
    tz = ZoneInfo("Asia/Shanghai")
    async with db.session() as s:
        rows = await s.execute(
            select(Customer, Deal, Member.user_id)
            .join(Deal, Deal.customer_id == Customer.id)
            .outerjoin(Member, Member.id == Customer.owner_id)
            .order_by(Customer.name)
        )
        return [
            (
                c.name,
                owner,
                d.stage,
                {"open": "active"}.get(d.status, d.status),  # the customer's status before deals had one
                d.amount_fen,
                c.last_activity_at.astimezone(tz).date(),
                c.next_followup_on,
                c.note,
                c.claimed_at.astimezone(tz).date() if c.claimed_at and c.owner_id else None,
            )
            for c, d, owner in rows.all()
        ]


async def _count(db) -> int:  # type: ignore[no-untyped-def]
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(Customer))).scalar_one()


ODD_SHEET = [
    ["Customer Name", " 负责人 ", " 金额（元） ", "阶段", "最近跟进时间", "备注", "来源"],
    ["华为技术", "张三", 100, "线索", None, None, "展会"],  # 2: already claimed in chat
    ["深圳市腾讯计算机系统有限公司", "张三", 500000, "报价", datetime(2026, 11, 20), "老客户", "转介绍"],  # 3
    [None, "张三", 1, "线索", None, None, None],  # 4: empty name
    ["小米科技", "张三", "很多钱", "线索", None, None, None],  # 5: bad amount
    ["字节跳动", "张三", None, "线索", "2026-13-45", None, None],  # 6: bad date
    ["大疆创新", "王五", "12万", "初访", "2026/11/02", None, None],  # 7: unknown owner → pool
    ["腾讯计算机系统有限公司", "张三", None, None, None, None, None],  # 8: same as row 3
    ["美团", "张三", "30万", "成交", "2026-11-25", None, None],  # 9: won
]


async def test_import_reports_duplicates_and_bad_rows_and_imports_the_good_ones(bot, db, clock, tmp_path) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    sheet = _xlsx(tmp_path / "张三的客户.xlsx", ODD_SHEET)
    code, report = await run_import(db, _args("import", "customers", str(sheet), "--team", "销售一组"), clock.now)
    assert code == 0
    assert "已导入 3 个客户（其中 1 个进公海）" in report
    assert "第 2 行 华为技术：已存在客户「北京华为技术有限公司」（负责人 张三）" in report
    assert "第 8 行 腾讯计算机系统有限公司：与第 3 行「深圳市腾讯计算机系统有限公司」是同一客户" in report
    assert "第 4 行：客户名称为空" in report
    assert "第 5 行：金额「很多钱」看不懂" in report
    assert "第 6 行：最近跟进日期「2026-13-45」看不懂" in report
    assert "第 7 行：负责人「王五」不是本组织成员，「大疆创新」已放入公海" in report
    assert "未使用的列：来源" in report
    by_name = {c[0]: c for c in await _customers(db)}
    assert set(by_name) == {"北京华为技术有限公司", "深圳市腾讯计算机系统有限公司", "大疆创新", "美团"}
    assert by_name["深圳市腾讯计算机系统有限公司"][1:8] == (
        "张三", "报价", "active", 50_000_000, date(2026, 11, 20), None, "老客户"
    )
    assert by_name["大疆创新"][1:5] == (None, "初访", "active", 12_000_000)
    assert by_name["美团"][2:5] == ("赢单", "won", 30_000_000)
    # Imported customers obey the same 撞单 rules as claimed ones.
    [reply] = await bot.say("认领 腾讯计算机系统", user="李四")
    assert "撞单" in reply and "@张三" in reply
    [mine] = await bot.say("我的", user="张三")
    assert "深圳市腾讯计算机系统有限公司" in mine


async def test_a_dry_run_shows_what_would_happen_and_writes_nothing(bot, db, clock, tmp_path) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    sheet = _xlsx(tmp_path / "a.xlsx", ODD_SHEET)
    before = await _count(db)
    args = _args("import", "customers", str(sheet), "--team", "销售一组", "--dry-run")
    code, report = await run_import(db, args, clock.now)
    assert code == 0 and "预演" in report and "将导入 3 个客户" in report
    assert await _count(db) == before


async def test_a_chinese_excel_csv_in_gbk_with_short_headers_imports(bot, db, clock, tmp_path) -> None:
    await bot.say("帮助", user="张三")
    path = tmp_path / "客户.csv"
    path.write_bytes("客户名,负责人,金额（万元）,阶段\n格力电器,张三,12.5,谈判\n".encode("gbk"))
    code, report = await run_import(db, _args("import", "customers", str(path), "--team", "销售一组"), clock.now)
    assert code == 0 and "已导入 1 个客户（其中 0 个进公海）" in report
    [customer] = await _customers(db)
    assert customer[:5] == ("格力电器", "张三", "谈判", "active", 12_500_000)


async def test_a_sheet_without_a_customer_column_is_refused(db, clock, tmp_path) -> None:
    sheet = _xlsx(tmp_path / "x.xlsx", [["姓名", "电话"], ["张三", "138"]])
    code, text = await run_import(db, _args("import", "customers", str(sheet), "--team", "销售一组"), clock.now)
    assert code == 1 and "找不到「客户名称」列" in text
    missing = _args("import", "customers", str(tmp_path / "none.xlsx"), "--team", "t")
    code, text = await run_import(db, missing, clock.now)
    assert code == 1 and "找不到文件" in text


async def _empty(db) -> None:  # type: ignore[no-untyped-def]
    async with db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(delete(table))


async def test_export_then_import_into_an_empty_database_gives_the_same_customers(bot, db, clock, tmp_path) -> None:
    await bot.say("认领 北京华为技术有限公司", user="张三")
    await bot.say("跟进 华为 已约拜访 阶段:报价 金额:120.5万 下次:2026-12-03", user="张三")
    await bot.say("认领 腾讯科技", user="李四")
    await bot.say("赢单 腾讯 30万", user="李四")
    await bot.say("认领 小米科技", user="李四")
    await bot.say("输单 小米 预算被砍", user="李四")
    await bot.say("认领 字节跳动", user="王五")
    await bot.say("释放 字节", user="王五")
    clock.advance(days=3)
    await bot.say("认领 美团点评", user="张三")
    before = await _customers(db)
    out = tmp_path / "customers.xlsx"
    args = _args("export", "customers", "--team", "销售一组", "--out", str(out))
    code, text = await run_export(db, args, clock.now)
    assert code == 0 and "5 行" in text
    sheet = load_workbook(out).active
    assert [c.value for c in sheet[1]][:6] == ["客户名称", "负责人", "负责人ID", "阶段", "金额（元）", "最近跟进"]

    await _empty(db)
    assert await _count(db) == 0
    code, report = await run_import(db, _args("import", "customers", str(out), "--team", "销售一组"), clock.now)
    assert code == 0 and "已导入 5 个客户（其中 1 个进公海）" in report
    assert await _customers(db) == before
    [reply] = await bot.say("认领 华为技术", user="李四")
    assert "撞单" in reply and "@张三" in reply and "2026-11-27" in reply


async def test_followups_and_points_export_as_workbooks(bot, db, clock, tmp_path) -> None:
    await bot.say("认领 华为", user="张三")
    await bot.say("跟进 华为 初次拜访 阶段:初访", user="张三")
    await bot.say("求助 华为 需要报价模板", user="张三")
    await bot.say("接 #1", user="李四")
    out = tmp_path / "f.xlsx"
    args = _args("export", "followups", "--team", "销售一组", "--out", str(out))
    assert (await run_export(db, args, clock.now))[0] == 0
    rows = list(load_workbook(out).active.iter_rows(values_only=True))
    assert rows[0][:4] == ("时间", "客户", "记录人", "内容")
    assert rows[1][1:5] == ("华为", "张三", "初次拜访", "线索 → 初访")
    out = tmp_path / "p.xlsx"
    args = _args("export", "points", "--team", "销售一组", "--out", str(out))
    assert (await run_export(db, args, clock.now))[0] == 0
    rows = list(load_workbook(out).active.iter_rows(values_only=True))
    assert rows[1][1:5] == ("李四", 1, "接下求助", "#1 需要报价模板")
    code, _ = await run_export(db, _args("export", "points", "--team", "没有这个组", "--out", str(out)), clock.now)
    assert code == 1


def test_the_command_line_imports_and_exports_a_sqlite_database(tmp_path, capsys) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    sheet = _xlsx(tmp_path / "in.xlsx", [["客户名称", "负责人ID", "负责人", "阶段"], ["华为", "u1", "张三", "报价"]])
    assert cli.main(["--db", url, "import", "customers", str(sheet), "--team", "销售一组"]) == 0
    assert "已导入 1 个客户" in capsys.readouterr().out
    out = tmp_path / "out.xlsx"
    assert cli.main(["--db", url, "export", "customers", "--team", "销售一组", "--out", str(out)]) == 0
    assert list(load_workbook(out).active.iter_rows(values_only=True))[1][:4] == ("华为", "张三", "u1", "报价")


def test_a_note_across_two_lines_in_a_csv_survives_import_and_export(tmp_path, capsys) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    sheet = tmp_path / "in.csv"
    # As Excel saves it: CRLF between rows, a bare LF inside the quoted cell.
    sheet.write_bytes('客户名称,负责人,备注\r\n华为,张三,"周一拜访\n周三报价"\r\n小米,张三,老客户\r\n'.encode("utf-8-sig"))
    assert cli.main(["--db", url, "import", "customers", str(sheet), "--team", "销售一组"]) == 0
    assert "已导入 2 个客户" in capsys.readouterr().out
    out = tmp_path / "out.xlsx"
    assert cli.main(["--db", url, "export", "customers", "--team", "销售一组", "--out", str(out)]) == 0
    rows = list(load_workbook(out).active.iter_rows(values_only=True))
    notes = {row[0]: row[rows[0].index("备注")] for row in rows[1:]}
    assert notes == {"华为": "周一拜访\n周三报价", "小米": "老客户"}
