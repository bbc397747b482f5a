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
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from bot import cli_calendar, cli_ops, cli_serve, cli_sheets
from bot.assembly import open_database, rekey_customer_names
from bot.cli_base import Command, prepared_database
from bot.logs import configure_logging
from bot.settings import ConfigError, Settings, load_settings
from storage.engine import DatabaseURLError
from storage.migrate import SchemaNotReady

log = logging.getLogger("salesbot")


# ------------------------------------------------------------------- chat
async def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from bot.adapters.console import ConsoleChat
    from bot.assembly import build_router

    async with prepared_database(settings) as db:
        chat = ConsoleChat(build_router(db), team=args.team, user=args.user)
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


def _read_line(interactive: bool) -> str | None:
    if interactive:
        return input("你> ")
    line = sys.stdin.readline()
    return None if line == "" else line.rstrip("\n")


def _prefix(text: str) -> str:
    return "\n".join(("bot> " if i == 0 else "     ") + part for i, part in enumerate(text.splitlines() or [""]))


# --------------------------------------------------------------------- db
async def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from storage import migrate

    db = open_database(settings)
    try:
        if args.action == "upgrade":
            await migrate.upgrade(db.engine, args.revision)
            current = await migrate.current_revision(db.engine)
            print(f"数据库已升级到 {current}")
            if current == migrate.head_revision():
                await rekey_customer_names(db)
        elif args.action == "prune":
            from datetime import datetime

            days = args.days if args.days is not None else settings.retention_days
            if days <= 0:
                print("保留天数为 0：不清理。用 --days N 指定天数。")
                return 0
            removed = await db.prune_bookkeeping(datetime.now(UTC), days)
            print(f"已清理 {days} 天前已处理完的记录：消息去重 {removed['inbound_messages']} 条，"
                  f"发送队列 {removed['outbox']} 条，趋势图 {removed['chart_images']} 张"
                  "（审计日志和业务数据不受影响）。")
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
async def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(settings.masked(), ensure_ascii=False, indent=2))
    for warning in _calendar_warnings(settings):
        print(f"警告：{warning}", file=sys.stderr)
    print("配置检查通过。", file=sys.stderr)
    return 0


def _calendar_warnings(settings: Settings) -> list[str]:
    """The holiday package lacks this year, or (in December) next year: what the admins' notice says too."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    import chinese_calendar

    from schedules.holidays import missing_years

    today = datetime.now(ZoneInfo(settings.timezone)).date()
    return [
        f"chinesecalendar {chinese_calendar.__version__} 没有 {year} 年的节假日数据：{year} 年未录入的日子按周一到周五"
        f"发晨会和日报。请管理员在群里「设置 假期 …」/「设置 调休 …」，或运行 salesbot calendar import <文件>"
        f"（已录入的可用 salesbot calendar show {year} 核对），或升级 chinesecalendar。"
        for year in missing_years(today)
    ]


# ------------------------------------------------------------------ admin
async def cmd_admin(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime

    async with prepared_database(settings) as db:
        now = datetime.now(UTC)
        async with db.transaction() as store:
            org = await store.ensure_org(args.platform, args.org, now)
            member = await store.ensure_member(org, args.user_id, args.name or args.user_id, now)
            await store.set_admin(org, member, args.action == "add", now)
        verb = "设为" if args.action == "add" else "取消"
        print(f"已{verb}管理员：{args.user_id}（{args.platform}/{args.org}）")
        return 0


# ------------------------------------------------------------------- team
async def cmd_team(args: argparse.Namespace, settings: Settings) -> int:
    """`salesbot team set-webhook <地址> --chat <群 chatid>`: the team's group-robot push (WeCom)."""
    from datetime import datetime

    from bot.adapters.wecom_settings import set_team_webhook, webhook_key_from
    from bot.masking import mask_secret
    from handlers.commands import UserError

    try:
        key = webhook_key_from(args.url)
    except UserError as err:
        print(err.text(), file=sys.stderr)
        return 2
    org_key = args.org or settings.wecom_corp_id
    if not org_key:
        print("请用 --org 指定企业 CorpID（或设置 SALESBOT_WECOM_CORP_ID）", file=sys.stderr)
        return 2
    async with prepared_database(settings) as db:
        now = datetime.now(UTC)
        async with db.transaction() as store:
            org = await store.ensure_org("wecom", org_key, now)
            team = await store.get_team(org, args.chat)
            if team is None:
                print(f"找不到群 {args.chat} 对应的团队：请先在该群里 @机器人 发一条消息（如：帮助）。",
                      file=sys.stderr)
                return 1
            store.bind_team(org, team)
            await set_team_webhook(store, key, now)
        print(f"已为团队「{team.name}」设置群推送机器人 {mask_secret(key)}")
        return 0


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

    cli_serve.add_parser(sub)

    db = sub.add_parser("db", help="数据库迁移")
    db.add_argument("action", choices=["upgrade", "downgrade", "current", "prune"])
    db.add_argument("revision", nargs="?", default="head")
    db.add_argument("--days", type=int, default=None, help="prune：保留天数（默认 SALESBOT_RETENTION_DAYS，30）")
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

    team = sub.add_parser("team", help="团队设置")
    team.add_argument("action", choices=["set-webhook"])
    team.add_argument("url", help="企业微信群机器人 Webhook 地址（或 key）")
    team.add_argument("--chat", required=True, help="团队所在群的 chatid")
    team.add_argument("--org", help="企业 CorpID（默认 SALESBOT_WECOM_CORP_ID）")
    team.add_argument("--db", dest="sub_db")

    cli_ops.add_parsers(sub)
    cli_sheets.add_parsers(sub)
    cli_calendar.add_parsers(sub)
    return parser


COMMANDS: dict[str, Command] = {
    "chat": cmd_chat,
    "serve": cli_serve.cmd_serve,
    "db": cmd_db,
    "config": cmd_config,
    "admin": cmd_admin,
    "team": cmd_team,
    "outbox": cli_ops.cmd_outbox,
    "jobs": cli_ops.cmd_jobs,
    "import": cli_sheets.cmd_import,
    "export": cli_sheets.cmd_export,
    "calendar": cli_calendar.cmd_calendar,
}


def _run(coro: Any, *, service: bool) -> int:
    """The service runs on uvloop where it is installed (see pyproject); everything else, and any
    platform without it, on asyncio's own loop."""
    if service:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return int(uvloop.run(coro))
    return int(asyncio.run(coro))


def _configure_logging(args: argparse.Namespace, settings: Settings | None) -> None:
    """SALESBOT_LOG_LEVEL and SALESBOT_LOG_FORMAT (bot.logs); `-v` means DEBUG whatever they say.

    Until the settings are read (a configuration error is printed, not logged) the defaults apply. The
    console chat logs at WARNING at least: its terminal is the conversation.
    """
    level = logging.getLevelName(settings.log_level if settings is not None else "INFO")
    if args.command == "chat":
        level = max(level, logging.WARNING)
    configure_logging(logging.DEBUG if args.verbose else level, settings.log_format if settings else "text")
    # APScheduler logs every tick at INFO; alembic's per-connection chatter only matters for `db`.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if args.command != "db" and not args.verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args, None)
    overrides: dict[str, Any] = {
        "database_url": getattr(args, "sub_db", None) or args.db,
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
    }
    try:
        settings = load_settings(config_file=getattr(args, "sub_config", None) or args.config, **overrides)
        _configure_logging(args, settings)
        return _run(COMMANDS[args.command](args, settings), service=args.command == "serve")
    except (ConfigError, DatabaseURLError, SchemaNotReady) as err:
        print(str(err), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except OSError as err:
        print(f"出错了：{err}", file=sys.stderr)
        return 1
    except Exception as err:  # a bug or an unreachable service: one line, details in the log at -v
        log.debug("unexpected error", exc_info=True)
        print(f"出错了：{type(err).__name__}: {err}（加 -v 查看详细日志）", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
