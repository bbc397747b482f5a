"""`salesbot` — the command line: chat on the console, serve the platforms, operate the database.

Every sub-command reports problems as one Chinese line on stderr and a non-zero exit code; a
traceback is a bug.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot.settings import ConfigError, Settings, load_settings
from storage.database import Database
from storage.engine import DatabaseURLError
from storage.migrate import SchemaNotReady

log = logging.getLogger("salesbot")

Command = Callable[[argparse.Namespace, Settings], Awaitable[int]]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


# ------------------------------------------------------------------- chat
@command("chat")
async def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from bot.adapters.console import ConsoleChat
    from bot.app import build_router

    db = Database.from_url(settings.database_url)
    try:
        await db.prepare()
        chat = ConsoleChat(build_router(db, settings), team=args.team, user=args.user)
        interactive = sys.stdin.isatty()
        if interactive:
            print(f"salesbot 本地聊天 · 团队「{args.team}」· 你是「{args.user}」。输入「帮助」查看命令，Ctrl-D 退出。")
            print("提示：以「@名字: 」开头可以换一个人说话，例如  @李四: 认领 华为")
        while True:
            try:
                line = await asyncio.to_thread(_read_line, interactive)
            except EOFError:
                break
            if line is None:
                break
            for reply in await chat.say_line(line):
                print(_prefix(reply), flush=True)
        return 0
    finally:
        await db.close()


def _read_line(interactive: bool) -> str | None:
    if interactive:
        return input("你> ")
    line = sys.stdin.readline()
    return None if line == "" else line.rstrip("\n")


def _prefix(text: str) -> str:
    return "\n".join(("bot> " if i == 0 else "     ") + part for i, part in enumerate(text.splitlines() or [""]))


# ------------------------------------------------------------------ serve
@command("serve")
async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    from bot.app import build_app

    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info("salesbot serving on http://%s:%s", settings.host, settings.port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
    return 0


# --------------------------------------------------------------------- db
@command("db")
async def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from storage import migrate

    db = Database.from_url(settings.database_url)
    try:
        if args.action == "upgrade":
            await migrate.upgrade(db.engine, args.revision)
            print(f"数据库已升级到 {await migrate.current_revision(db.engine)}")
        elif args.action == "downgrade":
            await migrate.downgrade(db.engine, args.revision)
            print(f"数据库已降级到 {await migrate.current_revision(db.engine) or '空'}")
        else:
            current = await migrate.current_revision(db.engine)
            head = migrate.head_revision()
            print(f"当前版本：{current or '未初始化'}；最新版本：{head}")
            return 0 if current == head else 1
        return 0
    finally:
        await db.close()


# ----------------------------------------------------------------- config
@command("config")
async def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(settings.masked(), ensure_ascii=False, indent=2))
    print("配置检查通过。", file=sys.stderr)
    return 0


# ------------------------------------------------------------------ admin
@command("admin")
async def cmd_admin(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime, timezone

    db = Database.from_url(settings.database_url)
    try:
        await db.prepare()
        now = datetime.now(timezone.utc)
        async with db.transaction() as store:
            org = await store.ensure_org(args.platform, args.org, now)
            member = await store.ensure_member(org, args.user_id, args.name or args.user_id, now)
            before = member.is_admin
            member.is_admin = args.action == "add"
            store.session.add(member)
            from storage.models import AuditLog

            store.session.add(
                AuditLog(org_id=org.id, action="set_admin", entity="member", entity_id=member.id,
                         before={"is_admin": before}, after={"is_admin": member.is_admin}, created_at=now)
            )
        verb = "设为" if args.action == "add" else "取消"
        print(f"已{verb}管理员：{args.user_id}（{args.platform}/{args.org}）")
        return 0
    finally:
        await db.close()


# ---------------------------------------------------------- import / export
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
    from datetime import datetime, timezone
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from handlers.excel_io import SheetError, apply_import, import_report, plan_import

    now = now or datetime.now(timezone.utc)
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
    """`salesbot export customers|followups|points …` on an open database: (exit code, message)."""
    from datetime import datetime, timezone
    from pathlib import Path

    from handlers.excel_io import SheetError, export_rows, write_workbook

    now = now or datetime.now(timezone.utc)
    async with db.transaction() as store:
        team = await _bind_team(store, args, now, create=False)
        if team is None:
            return 1, ""
        title, headers, rows = await export_rows(store, args.what)
    try:
        write_workbook(Path(args.out), title, headers, rows)
    except SheetError as err:
        return 1, str(err)
    return 0, f"已导出「{team.name}」的{title} {len(rows)} 行到 {args.out}"


@command("import")
async def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    return await _run_sheet_command(run_import, args, settings)


@command("export")
async def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    return await _run_sheet_command(run_export, args, settings)


async def _run_sheet_command(run: Any, args: argparse.Namespace, settings: Settings) -> int:
    db = Database.from_url(settings.database_url)
    try:
        await db.prepare()
        code, text = await run(db, args)
        if text:
            print(text, file=sys.stdout if code == 0 else sys.stderr)
        return code
    finally:
        await db.close()


# ------------------------------------------------------------------- main
def _login_name() -> str:
    import getpass

    try:
        return getpass.getuser() or "我"
    except Exception:
        return "我"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salesbot", description="销售协作机器人")
    parser.add_argument("--config", help="TOML 配置文件（也可用 SALESBOT_CONFIG）")
    parser.add_argument("--db", help="数据库地址，覆盖 SALESBOT_DATABASE_URL")
    parser.add_argument("-v", "--verbose", action="store_true", help="输出调试日志")
    sub = parser.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat", help="在终端里和机器人聊天（本地 SQLite，无需企业微信/钉钉账号）")
    chat.add_argument("--user", default=_login_name(), help="以谁的身份发言（默认：当前登录名）")
    chat.add_argument("--team", default="销售一组", help="团队名（默认：销售一组）")
    chat.add_argument("--db", dest="sub_db", help="数据库地址")

    serve = sub.add_parser("serve", help="启动 HTTP 服务（企业微信/钉钉回调、定时推送、发送队列）")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--config", dest="sub_config")
    serve.add_argument("--db", dest="sub_db")

    db = sub.add_parser("db", help="数据库迁移")
    db.add_argument("action", choices=["upgrade", "downgrade", "current"])
    db.add_argument("revision", nargs="?", default="head")
    db.add_argument("--db", dest="sub_db")

    config = sub.add_parser("config", help="检查配置（密钥会被隐藏）")
    config.add_argument("action", choices=["check"])
    config.add_argument("--config", dest="sub_config")

    admin = sub.add_parser("admin", help="管理员")
    admin.add_argument("action", choices=["add", "remove"])
    admin.add_argument("user_id", help="平台用户 ID（控制台里就是名字）")
    admin.add_argument("--name")
    admin.add_argument("--platform", default="console", choices=["console", "wecom", "dingtalk"])
    admin.add_argument("--org", default="console", help="企业 CorpID（控制台为 console）")
    admin.add_argument("--db", dest="sub_db")

    imp = sub.add_parser("import", help="从 Excel/CSV 导入客户（查重、坏行列出，好行照常导入）")
    imp.add_argument("what", choices=["customers"])
    imp.add_argument("file", help="FILE.xlsx 或 FILE.csv（列：客户名称、负责人、阶段、金额、最近跟进、备注）")
    imp.add_argument("--team", required=True, help="团队名或群 ID")
    imp.add_argument("--org", default="console", help="企业 CorpID（控制台为 console）")
    imp.add_argument("--platform", default="console", choices=["console", "wecom", "dingtalk"])
    imp.add_argument("--dry-run", action="store_true", help="只预演，不写入数据库")
    imp.add_argument("--db", dest="sub_db")

    exp = sub.add_parser("export", help="导出客户、跟进记录或协作积分为 Excel")
    exp.add_argument("what", choices=["customers", "followups", "points"])
    exp.add_argument("--team", required=True, help="团队名或群 ID")
    exp.add_argument("--out", required=True, help="输出文件 FILE.xlsx")
    exp.add_argument("--org", default="console", help="企业 CorpID（控制台为 console）")
    exp.add_argument("--platform", default="console", choices=["console", "wecom", "dingtalk"])
    exp.add_argument("--db", dest="sub_db")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else (logging.WARNING if args.command == "chat" else logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    overrides: dict[str, Any] = {
        "database_url": getattr(args, "sub_db", None) or args.db,
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
    }
    try:
        settings = load_settings(config_file=getattr(args, "sub_config", None) or args.config, **overrides)
        return asyncio.run(COMMANDS[args.command](args, settings))
    except (ConfigError, DatabaseURLError, SchemaNotReady) as err:
        print(str(err), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except OSError as err:
        print(f"出错了：{err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
