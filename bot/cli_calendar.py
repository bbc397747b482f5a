"""`salesbot calendar import|show`: an organisation's holidays and make-up days from a file, and a year's list.

`import` is what an operator runs when the State Council publishes next year's schedule before the
`chinesecalendar` package has it (or for a company's own days): the file's days become the
organisation's entries (source 导入), exactly as `设置 假期` / `设置 调休` would write them. `show` lists
every holiday and make-up day of a year with where it comes from: 库 chinesecalendar, 管理员, 导入.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.cli_base import DryRun, find_org, prepared_database
from bot.settings import Settings
from storage.database import Database


async def run_calendar_import(db: Database, args: argparse.Namespace, now: datetime | None = None) -> tuple[int, str]:
    """`salesbot calendar import FILE …` on an open database: (exit code, report or error line)."""
    from zoneinfo import ZoneInfo

    from handlers.holiday_files import HolidayFileError, read_holiday_file
    from schedules.holidays import KIND_NAMES
    from storage.calendar_days import write_days

    now = now or datetime.now(UTC)
    try:
        async with db.transaction() as store:
            org = await find_org(store, args, now, create=True)
            if org is None:
                return 1, ""
            found = read_holiday_file(Path(args.file), now.astimezone(ZoneInfo(org.timezone)).date())
            if not found.entries:
                return 1, "\n".join(["文件里没有可导入的日子。", *found.problems])
            written = await write_days(store, org.id, found.entries, "import", now)
            counts = {kind: sum(e.kind == kind for e in found.entries) for kind in KIND_NAMES}
            years = sorted({e.day.year for e in found.entries})
            lines = [
                f"{'预演（未写入）' if args.dry_run else '已导入'}「{org.name}」（整个企业所有团队生效）："
                f"{'、'.join(f'{KIND_NAMES[k]} {n} 天' for k, n in counts.items() if n)}"
                f"（{'、'.join(str(y) for y in years)} 年；新增 {written.added}，替换 {written.replaced}，"
                f"不变 {written.unchanged}）",
            ]
            if found.problems:
                lines.append(f"跳过 {len(found.problems)} 条：")
                lines += [f"  {p}" for p in found.problems]
            lines.append(f"查看：salesbot calendar show {years[0]} --org {args.org} --platform {args.platform}")
            if args.dry_run:
                raise DryRun("\n".join(lines))
            return 0, "\n".join(lines)
    except DryRun as dry:
        return 0, dry.report
    except HolidayFileError as err:
        return 1, str(err)


async def run_calendar_show(db: Database, args: argparse.Namespace) -> tuple[int, str]:
    """`salesbot calendar show YEAR …`: every holiday and make-up day of the year, marked by source."""
    import chinese_calendar

    from handlers.dates import weekday_name
    from schedules.calendar import library_covers
    from schedules.holidays import KIND_NAMES, SOURCE_NAMES, year_days
    from storage.calendar_days import org_days

    year = args.year
    async with db.transaction() as store:
        org = await find_org(store, args, datetime.now(UTC), create=False)
        if org is None:
            return 1, ""
        shown = year_days(year, await org_days(store, org.id))
    lines = [f"{year} 年的假期和调休上班日 · {org.name}（{args.platform}/{args.org}）"]
    if not library_covers(year):
        lines.append(f"⚠️ chinesecalendar {chinese_calendar.__version__} 没有 {year} 年的数据：下面没有列出的日子"
                     f"按周一到周五。录入：群里「设置 假期 …」或 salesbot calendar import <文件>。")
    for entry in shown:
        replaces = f"（替换库里的 {entry.replaces}）" if entry.replaces else ""
        lines.append(f"{entry.day.isoformat()} {weekday_name(entry.day)}  {KIND_NAMES[entry.kind]:<4}  "
                     f"{entry.name or '—'}  [{SOURCE_NAMES[entry.source]}]{replaces}")
    holidays = sum(e.kind == "holiday" for e in shown)
    lines.append(f"共 {len(shown)} 天：{KIND_NAMES['holiday']} {holidays} 天，{KIND_NAMES['workday']} "
                 f"{len(shown) - holidays} 天（周六日不列出，除非是调休上班或节假日的一部分）。")
    return 0, "\n".join(lines)


async def cmd_calendar(args: argparse.Namespace, settings: Settings) -> int:
    async with prepared_database(settings) as db:
        if args.action == "import":
            code, text = await run_calendar_import(db, args)
        else:
            code, text = await run_calendar_show(db, args)
        if text:
            print(text, file=sys.stdout if code == 0 else sys.stderr)
        return code


def _year(text: str) -> int:
    if not text.isdigit() or not 1900 <= int(text) <= 2200:
        raise argparse.ArgumentTypeError(f"「{text}」不是年份，例如 2027")
    return int(text)


def add_parsers(sub: Any) -> None:
    calendar = sub.add_parser("calendar", help="企业自己的假期和调休：从文件导入、按年查看")
    actions = calendar.add_subparsers(dest="action", required=True)
    imp = actions.add_parser("import", help="从 CSV（日期,类型,名称）或 .ics 导入假期和调休上班日")
    imp.add_argument(
        "file", help="FILE.csv（列：日期,类型(假期/调休),名称）或 FILE.ics（标题含「休」为假期、含「班」为调休）"
    )
    imp.add_argument("--dry-run", action="store_true", help="只预演，不写入数据库")
    show = actions.add_parser("show", help="列出某年的每个假期和调休上班日，并标明来源（库/管理员/导入）")
    show.add_argument("year", type=_year, help="年份，例如 2027")
    for parser in (imp, show):
        parser.add_argument("--org", default="console", help="企业 CorpID（控制台为 console）")
        parser.add_argument("--platform", default="console", choices=["console", "wecom", "dingtalk"])
        parser.add_argument("--db", dest="sub_db")
