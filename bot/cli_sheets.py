"""`salesbot import` and `salesbot export`: customers in and out of Excel/CSV sheets."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.cli_base import prepared_database
from bot.settings import Settings
from storage.database import Database


async def _bind_team(store: Any, args: argparse.Namespace, now: Any, *, create: bool) -> Any:
    """Scope the store to --team within --org; None (after printing why) when it cannot be found.

    On the console a team's chat id is its name, so an import may create the organisation and team
    (that is what makes "export, then import into an empty database" work). On WeCom/DingTalk the team
    must already exist: it is bound to its group chat when someone there first talks to the bot.
    """
    org = await store.get_org(args.platform, args.org)
    if org is None and create and args.platform == "console":
        org = await store.ensure_org(args.platform, args.org, now)
    if org is None:
        print(f"找不到组织「{args.org}」（平台 {args.platform}）。请检查 --org 和 --platform。", file=sys.stderr)
        return None
    team = await store.get_team(org, args.team)
    if team is None and create and args.platform == "console":
        team = await store.ensure_team(org, args.team, args.team, now)
    if team is None:
        print(f"找不到团队「{args.team}」。请用团队名或群 ID；新群请先在群里给机器人发一条消息。", file=sys.stderr)
        return None
    store.bind_team(org, team)
    return team


class _RollBack(Exception):
    """Leaves a unit of work without committing (a dry run), carrying what to print."""

    def __init__(self, report: str) -> None:
        super().__init__(report)
        self.report = report


async def run_import(db: Database, args: argparse.Namespace, now: Any = None) -> tuple[int, str]:
    """`salesbot import customers …` on an open database: (exit code, report or error line)."""
    from zoneinfo import ZoneInfo

    from handlers.excel_io import SheetError, apply_import, import_report, plan_import

    now = now or datetime.now(UTC)
    # One transaction: the good rows all go in together or not at all; a dry run rolls back.
    try:
        async with db.transaction() as store:
            team = await _bind_team(store, args, now, create=True)
            if team is None:
                return 1, ""
            today = now.astimezone(ZoneInfo(store.org.timezone)).date()
            plan = await plan_import(store, Path(args.file), today)
            if args.dry_run:
                raise _RollBack(import_report(team.name, plan, None))
            return 0, import_report(team.name, plan, await apply_import(store, plan, now))
    except _RollBack as dry:
        return 0, dry.report
    except SheetError as err:
        return 1, str(err)


async def run_export(db: Database, args: argparse.Namespace, now: Any = None) -> tuple[int, str]:
    """`salesbot export customers|followups|points|deals …` on an open database: (exit code, message)."""
    from zoneinfo import ZoneInfo

    from handlers.deal_sheet import MonthError, deal_rows, month_of
    from handlers.excel_io import SheetError, export_rows, write_workbook

    now = now or datetime.now(UTC)
    async with db.transaction() as store:
        team = await _bind_team(store, args, now, create=False)
        if team is None:
            return 1, ""
        if args.what == "deals":
            try:
                month = month_of(getattr(args, "month", None), now.astimezone(ZoneInfo(store.org.timezone)).date())
            except MonthError as err:
                return 1, str(err)
            title, headers, rows = await deal_rows(store, month)
        else:
            title, headers, rows = await export_rows(store, args.what)
    try:
        write_workbook(Path(args.out), title, headers, rows)
    except SheetError as err:
        return 1, str(err)
    return 0, f"已导出「{team.name}」的{title} {len(rows)} 行到 {args.out}"


async def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    return await _run_sheet_command(run_import, args, settings)


async def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    return await _run_sheet_command(run_export, args, settings)


async def _run_sheet_command(run: Any, args: argparse.Namespace, settings: Settings) -> int:
    async with prepared_database(settings) as db:
        code, text = await run(db, args)
        if text:
            print(text, file=sys.stdout if code == 0 else sys.stderr)
        return code


def add_parsers(sub: Any) -> None:
    imp = sub.add_parser("import", help="从 Excel/CSV 导入客户（查重、坏行列出，好行照常导入）")
    imp.add_argument("what", choices=["customers"])
    imp.add_argument("file", help="FILE.xlsx 或 FILE.csv（列：客户名称、负责人、阶段、金额、最近跟进、备注）")
    imp.add_argument("--team", required=True, help="团队名或群 ID")
    imp.add_argument("--org", default="console", help="企业 CorpID（控制台为 console）")
    imp.add_argument("--platform", default="console", choices=["console", "wecom", "dingtalk"])
    imp.add_argument("--dry-run", action="store_true", help="只预演，不写入数据库")
    imp.add_argument("--db", dest="sub_db")

    exp = sub.add_parser("export", help="导出客户、跟进记录、协作积分或某月的赢单输单为 Excel")
    exp.add_argument("what", choices=["customers", "followups", "points", "deals"])
    exp.add_argument("--team", required=True, help="团队名或群 ID")
    exp.add_argument("--out", required=True, help="输出文件 FILE.xlsx")
    exp.add_argument("--month", help="deals：哪个月，如 2026-11（默认本月）")
    exp.add_argument("--org", default="console", help="企业 CorpID（控制台为 console）")
    exp.add_argument("--platform", default="console", choices=["console", "wecom", "dingtalk"])
    exp.add_argument("--db", dest="sub_db")
