"""`salesbot` — the command line: chat on the console, serve the platforms, operate the database.

Every sub-command reports problems as one Chinese line on stderr and a non-zero exit code; a
traceback is a bug.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC
from typing import Any

from bot.app import open_database
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


@asynccontextmanager
async def prepared_database(settings: Settings) -> AsyncIterator[Database]:
    """The configured database, migrated (SQLite) or checked (PostgreSQL), closed afterwards."""
    db = open_database(settings)
    try:
        await db.prepare()
        yield db
    finally:
        await db.close()


# ------------------------------------------------------------------- chat
@command("chat")
async def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from bot.adapters.console import ConsoleChat
    from bot.app import build_router

    async with prepared_database(settings) as db:
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

    workers = getattr(args, "workers", None) or 1
    if workers < 1:
        print("--workers 至少为 1。", file=sys.stderr)
        return 2
    if workers > 1:
        from storage.engine import is_sqlite

        if is_sqlite(settings.database_url):
            print(
                f"--workers {workers} 需要 PostgreSQL：SQLite 同一时刻只允许一个写入者，多个进程只会互相等待。"
                "请去掉 --workers，或使用 postgresql://… 数据库。",
                file=sys.stderr,
            )
            return 2
        return await _serve_workers(workers)
    # A worker of `serve --workers N` shares the port with its siblings (SO_REUSEPORT): the kernel
    # spreads connections over the processes. Everything they share is in PostgreSQL and replica-safe
    # (inbound dedup and recovery leases, outbox SKIP LOCKED, schedule firing keys).
    reuse_port = os.environ.get(WORKER_ENV) is not None
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or None)
    await site.start()
    # Everything built so far (modules, mappers, compiled statements) lives as long as the process:
    # keep it out of the cyclic collector's full passes, whose pauses would show in reply latency.
    gc.freeze()
    log.info("salesbot serving on http://%s:%s%s", settings.host, settings.port,
             f" (worker {os.environ[WORKER_ENV]})" if reuse_port else "")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
    return 0


WORKER_ENV = "SALESBOT_SERVE_WORKER"


async def _serve_workers(workers: int) -> int:
    """Start `workers` copies of this `serve` (same arguments) on one port and watch them.

    SIGTERM/SIGINT are passed on; if one worker dies the others are stopped too, so a supervisor
    (systemd, Docker) sees the failure and restarts the whole set.
    """
    import signal

    argv = [sys.executable, "-m", "bot.cli", *_argv_without_workers(sys.argv[1:])]
    children = [
        await asyncio.create_subprocess_exec(*argv, env={**os.environ, WORKER_ENV: str(n)})
        for n in range(workers)
    ]
    log.info("salesbot: %d worker processes started (pids %s)", workers, ", ".join(str(c.pid) for c in children))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waits = [asyncio.ensure_future(c.wait()) for c in children]
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([*waits, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for child in children:
            if child.returncode is None:
                child.terminate()
        await asyncio.gather(*waits, return_exceptions=True)
        stopper.cancel()
    codes = [c.returncode for c in children]
    return 0 if stop.is_set() else next((c for c in codes if c), 1)


def _argv_without_workers(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return out


# --------------------------------------------------------------------- db
@command("db")
async def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from storage import migrate

    db = open_database(settings)
    try:
        if args.action == "upgrade":
            await migrate.upgrade(db.engine, args.revision)
            print(f"数据库已升级到 {await migrate.current_revision(db.engine)}")
        elif args.action == "prune":
            from datetime import datetime

            days = args.days if args.days is not None else settings.retention_days
            if days <= 0:
                print("保留天数为 0：不清理。用 --days N 指定天数。")
                return 0
            removed = await db.prune_bookkeeping(datetime.now(UTC), days)
            print(f"已清理 {days} 天前已处理完的记录：消息去重 {removed['inbound_messages']} 条，"
                  f"发送队列 {removed['outbox']} 条（审计日志和业务数据不受影响）。")
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
@command("team")
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
                print(f"找不到群 {args.chat} 对应的团队：请先在该群里 @机器人 发一条消息（如：帮助）。", file=sys.stderr)
                return 1
            store.bind_team(org, team)
            await set_team_webhook(store, key, now)
        print(f"已为团队「{team.name}」设置群推送机器人 {mask_secret(key)}")
        return 0


# ----------------------------------------------------------------- outbox
@command("outbox")
async def cmd_outbox(args: argparse.Namespace, settings: Settings) -> int:
    """Status of the send queue, or requeue failed messages. Never prints webhook keys or tokens:
    rows are shown by id and their non-secret `dest_key`, errors as the deliverers wrote them (masked)."""
    from datetime import datetime

    async with prepared_database(settings) as db:
        queue = db.outbox
        if args.action == "retry":
            if not args.failed and not args.ids:
                print("请指定要重发的消息编号，或用 --failed 重发全部失败消息。例如：salesbot outbox retry 42", file=sys.stderr)
                return 2
            now = datetime.now(UTC)
            if args.failed:
                # --failed means "the cause is fixed": also lift the broken-push marks (bot.broken),
                # or the requeued rows would fail fast again without being tried.
                from bot.broken import clear_all_marks

                cleared = await clear_all_marks(db, now)
                if cleared:
                    print(f"已解除 {cleared} 个群的「群推送已停用」标记。")
            count = await queue.requeue(now, args.ids, all_failed=args.failed)
            print(f"已重新排队 {count} 条消息。")
            return 0
        status = await queue.status()
        c = status.counts
        print(f"待发送 pending: {c['pending']}  发送中 sending: {c['sending']}  已发送 sent: {c['sent']}  失败 failed: {c['failed']}")
        if status.recent_errors:
            print("最近的错误：")
            for row_id, state, dest_key, attempts, when, error in status.recent_errors:
                print(f"  #{row_id} [{state}] {dest_key} 尝试 {attempts} 次：{error}")
        return 0


# ------------------------------------------------------------------- jobs
@command("jobs")
async def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime

    from bot.messages import render_mentions
    from schedules.calendar import local_now
    from schedules.firing import fire
    from schedules.jobs import JOBS, TeamSchedule
    from storage.schedule_store import all_teams, find_teams

    async with prepared_database(settings) as db:
        now = datetime.now(UTC)
        async with db.transaction() as store:
            teams = await (find_teams(store, args.team) if args.team else all_teams(store))
        if not teams:
            print(f"找不到团队：{args.team}" if args.team else "还没有任何团队。", file=sys.stderr)
            return 1
        if args.action == "list":
            for org, team in teams:
                schedule = TeamSchedule.of(team.settings, org.timezone)
                print(f"团队 {team.id}「{team.name}」（{org.platform}/{org.corp_key}，{org.timezone}，日历 {schedule.calendar}）")
                for kind in JOBS.values():
                    if kind.continuous:
                        print(f"  {kind.name:<16} {kind.title:<6} 每分钟检查（{schedule.escalate_hours:g} 个工作小时无人接）")
                        continue
                    slot = kind.next_slot(now, schedule)
                    when = local_now(slot.due_at, org.timezone).strftime("%Y-%m-%d %H:%M %a") if slot else "—"
                    print(f"  {kind.name:<16} {kind.title:<6} 下次 {when}  （{slot.key if slot else ''}）")
            return 0
        if args.job not in JOBS:
            print(f"没有这个任务：{args.job}。可选：{'、'.join(JOBS)}", file=sys.stderr)
            return 2
        if len(teams) > 1 and not args.team:
            print("请用 --team 指定团队。", file=sys.stderr)
            return 2
        code = 0
        for org, team in teams:
            result = await fire(db, team.id, args.job, now, force=args.force, preview=args.print)
            if result.status == "already":
                print(f"团队「{team.name}」的 {args.job} 已在本时段（{result.slot}）发送过；要再发一次请加 --force。", file=sys.stderr)
                code = 1
                continue
            if args.print:
                for push in result.pushes:
                    where = push.destination.get("chat_id") or ",".join(push.destination.get("user_ids") or [])
                    print(f"--- {args.job} → {push.destination['kind']}:{where}")
                    names = push.message.names
                    print(render_mentions(push.message.text, lambda uid: f"@{names.get(uid, uid)}"))
                if not result.pushes:
                    print(f"--- {args.job}：团队「{team.name}」此刻没有要发送的消息")
            else:
                print(f"团队「{team.name}」{args.job}（{result.slot}）：已放入发送队列 {len(result.pushes)} 条")
        return code


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
    from datetime import datetime
    from pathlib import Path
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
    """`salesbot export customers|followups|points …` on an open database: (exit code, message)."""
    from datetime import datetime
    from pathlib import Path

    from handlers.excel_io import SheetError, export_rows, write_workbook

    now = now or datetime.now(UTC)
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
    async with prepared_database(settings) as db:
        code, text = await run(db, args)
        if text:
            print(text, file=sys.stdout if code == 0 else sys.stderr)
        return code


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
    serve.add_argument("--workers", type=int, default=1,
                       help="进程数（共享端口，SO_REUSEPORT；仅 PostgreSQL）。默认 1")
    serve.add_argument("--config", dest="sub_config")
    serve.add_argument("--db", dest="sub_db")

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

    outbox = sub.add_parser("outbox", help="发送队列：查看待发送/失败数量与最近错误，或重发失败消息")
    outbox.add_argument("action", nargs="?", choices=["status", "retry"], default="status")
    outbox.add_argument("ids", nargs="*", type=int, help="要重发的消息编号")
    outbox.add_argument("--failed", action="store_true", help="重发全部失败消息")
    outbox.add_argument("--db", dest="sub_db")

    jobs = sub.add_parser("jobs", help="定时推送：查看下次时间、立即执行")
    jobs.add_argument("action", choices=["list", "run"])
    jobs.add_argument("job", nargs="?", help="任务名：standup、standup_summary、reminders、digest、retro、reclaim、escalation")
    jobs.add_argument("--team", help="团队名、群 ID 或团队编号")
    jobs.add_argument("--force", action="store_true", help="本时段已发送过也再发一次（新的去重键）")
    jobs.add_argument("--print", action="store_true", help="只把消息打印到终端，不发送、不记录")
    jobs.add_argument("--db", dest="sub_db")

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else (logging.WARNING if args.command == "chat" else logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # APScheduler logs every tick at INFO; alembic's per-connection chatter only matters for `db`.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if args.command != "db" and not args.verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    overrides: dict[str, Any] = {
        "database_url": getattr(args, "sub_db", None) or args.db,
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
    }
    try:
        settings = load_settings(config_file=getattr(args, "sub_config", None) or args.config, **overrides)
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
