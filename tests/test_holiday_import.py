"""`salesbot calendar import|show` and `salesbot config check`'s warning: a year's holidays from a file."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli import build_parser
from bot.cli_calendar import run_calendar_import, run_calendar_show
from schedules.scheduler import Scheduler
from storage.database import Database
from storage.models import AuditLog, CalendarDay
from tests.test_cli_and_serve import run_cli

CSV_2027 = """日期,类型（假期/调休）,名称
2027-02-06,假期,春节
2027/2/7,休,春节
2027年2月8日,假期,春节
2027-02-14,调休,春节调休
2027-02-30,假期,春节
2027-03-01,上课,植树
"""

ICS_2027 = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//salesbot tests//中国节假日//ZH
BEGIN:VEVENT
UID:2027-spring@test
DTSTART;VALUE=DATE:20270206
DTEND;VALUE=DATE:20270214
SUMMARY:春节 休
END:VEVENT
BEGIN:VEVENT
UID:2027-spring-work@test
DTSTART;VALUE=DATE:20270214
SUMMARY:春节（补班）
END:VEVENT
BEGIN:VEVENT
UID:2027-labour@test
DTSTART;VALUE=DATE:20270501
DTEND;VALUE=DATE:20270506
SUMMARY:劳动节放假\\, 共五天 休
END:VEVENT
BEGIN:VEVENT
UID:2027-tree@test
DTSTART;VALUE=DATE:20270312
SUMMARY:植树节
END:VEVENT
END:VCALENDAR
"""


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["calendar", *argv])


async def _days(db: Database) -> dict[date, tuple[str, str, str]]:
    async with db.session() as s:
        rows = (await s.execute(select(CalendarDay))).scalars().all()
    return {r.day: (r.kind, r.name, r.source) for r in rows}


async def test_a_csv_with_chinese_headers_imports_and_lists_the_rows_it_skipped(bot, db, clock, tmp_path) -> None:
    await bot.say("认领 华为", user="张三")
    path = tmp_path / "2027.csv"
    path.write_text(CSV_2027, encoding="utf-8-sig")  # as Excel saves a UTF-8 CSV
    code, report = await run_calendar_import(db, _args("import", str(path)), clock.now)
    assert code == 0, report
    assert "已导入" in report and "假期 3 天、调休上班 1 天" in report and "新增 4" in report
    assert "第 6 行：没有这一天" in report and "第 7 行：类型「上课」不认识" in report
    days = await _days(db)
    assert days[date(2027, 2, 7)] == ("holiday", "春节", "import")
    assert days[date(2027, 2, 14)] == ("workday", "春节调休", "import")
    async with db.session() as s:
        [audit] = (await s.execute(select(AuditLog).where(AuditLog.action == "calendar_set"))).scalars().all()
    assert audit.team_id is None and audit.after is not None and audit.after["source"] == "import"
    # The imported days drive the stand-up like an admin's.
    clock.set_local("2027-02-08 09:00:30")
    assert "standup" not in [r.job for r in await Scheduler(db, clock=clock).tick()]
    [listing] = await bot.say("设置 假期", user="张三")
    assert "春节 · 导入" in listing


async def test_an_ics_feed_imports_holidays_and_make_up_days_and_a_dry_run_writes_nothing(db, clock, tmp_path) -> None:
    path = tmp_path / "中国节假日.ics"
    path.write_text(ICS_2027, encoding="utf-8")
    code, dry = await run_calendar_import(db, _args("import", str(path), "--dry-run"), clock.now)
    assert code == 0 and "预演（未写入）" in dry and "假期 13 天、调休上班 1 天" in dry
    assert "第 4 个事件「植树节」" in dry
    assert await _days(db) == {}
    code, report = await run_calendar_import(db, _args("import", str(path)), clock.now)
    assert code == 0 and "已导入" in report
    days = await _days(db)
    assert len(days) == 14
    assert days[date(2027, 2, 13)] == ("holiday", "春节", "import")  # DTEND is exclusive: the 14th is not off
    assert days[date(2027, 2, 14)] == ("workday", "春节", "import")
    assert days[date(2027, 5, 5)][0] == "holiday" and date(2027, 5, 6) not in days
    again_code, again = await run_calendar_import(db, _args("import", str(path)), clock.now)
    assert again_code == 0 and "新增 0，替换 0，不变 14" in again


async def test_a_file_that_cannot_be_read_is_refused_in_one_line(db, clock, tmp_path) -> None:
    missing = await run_calendar_import(db, _args("import", str(tmp_path / "none.csv")), clock.now)
    assert missing[0] == 1 and "读不到文件" in missing[1]
    sheet = tmp_path / "days.xlsx"
    sheet.write_bytes(b"PK")
    assert "不支持的文件类型" in (await run_calendar_import(db, _args("import", str(sheet)), clock.now))[1]
    headless = tmp_path / "days.csv"
    headless.write_text("2027-02-06,假期\n", encoding="utf-8")
    assert "CSV 缺少列" in (await run_calendar_import(db, _args("import", str(headless)), clock.now))[1]
    broken = tmp_path / "days.ics"
    broken.write_text("BEGIN:VCALENDAR\nnot a calendar", encoding="utf-8")
    code, text = await run_calendar_import(db, _args("import", str(broken)), clock.now)
    assert code == 1 and "Traceback" not in text


async def test_show_marks_every_day_of_the_year_by_source(bot, db, clock, tmp_path) -> None:
    await bot.say("设置 假期 2026-12-31 公司年会", user="老板")
    await bot.say("设置 调休 2026-10-07", user="老板")  # the package says 国庆节: the admin's entry replaces it
    path = tmp_path / "extra.csv"
    path.write_text("date,kind,name\n2026-12-30,holiday,盘点\n", encoding="utf-8")
    await run_calendar_import(db, _args("import", str(path)), clock.now)
    code, text = await run_calendar_show(db, _args("show", "2026"))
    assert code == 0
    lines = text.splitlines()
    assert "2026-02-17 周二  假期    春节  [库 chinesecalendar]" in lines
    assert "2026-02-14 周六  调休上班  春节  [库 chinesecalendar]" in lines
    assert "2026-10-07 周三  调休上班  —  [管理员]（替换库里的 假期 国庆节）" in lines
    assert "2026-12-30 周三  假期    盘点  [导入]" in lines
    assert "2026-12-31 周四  假期    公司年会  [管理员]" in lines
    assert "没有 2026 年的数据" not in text

    code, unknown = await run_calendar_show(db, _args("show", "2027"))
    assert code == 0 and "没有 2027 年的数据" in unknown and "共 0 天" in unknown


async def test_show_and_import_name_an_unknown_organisation(db, clock, tmp_path, capsys) -> None:
    code, _ = await run_calendar_show(db, _args("show", "2027", "--org", "ww-nope", "--platform", "wecom"))
    assert code == 1 and "找不到组织「ww-nope」" in capsys.readouterr().err


def test_the_command_line_imports_and_shows_on_a_sqlite_database(tmp_path: Path) -> None:
    path = tmp_path / "2027.csv"
    path.write_text(CSV_2027, encoding="utf-8")
    db = ["--db", f"sqlite:///{tmp_path}/cli.db"]
    imported = run_cli("calendar", "import", str(path), *db)
    assert imported.returncode == 0, imported.stderr
    assert "已导入" in imported.stdout
    shown = run_cli("calendar", "show", "2027", *db)
    assert shown.returncode == 0 and "2027-02-14 周日  调休上班  春节调休  [导入]" in shown.stdout
    bad = run_cli("calendar", "show", "明年", *db)
    assert bad.returncode == 2 and "不是年份" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(("today", "warned"), [("2026-12-07", "2027"), ("2027-03-01", "2027"), ("2026-11-30", None)])
def test_config_check_warns_when_the_holiday_package_lacks_a_year(today: str, warned: str | None) -> None:
    import time_machine

    from bot.cli import _calendar_warnings
    from bot.settings import load_settings

    with time_machine.travel(f"{today} 12:00 +0800", tick=False):
        warnings = _calendar_warnings(load_settings({}))
    if warned is None:
        assert warnings == []
    else:
        [warning] = warnings
        assert f"没有 {warned} 年的节假日数据" in warning and "设置 假期" in warning and "calendar import" in warning


def test_config_check_prints_the_warning() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from schedules.holidays import missing_years

    result = run_cli("config", "check")
    assert result.returncode == 0 and "配置检查通过" in result.stderr
    missing = missing_years(datetime.now(ZoneInfo("Asia/Shanghai")).date())  # in December 2026: [2027]
    assert ("警告：chinesecalendar" in result.stderr) == bool(missing)
    assert all(f"{year} 年" in result.stderr for year in missing)
