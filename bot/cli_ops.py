"""`salesbot outbox` and `salesbot jobs`: operating the send queue and the scheduled pushes."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from bot.cli_base import prepared_database
from bot.settings import Settings
from storage.database import Database


# ----------------------------------------------------------------- outbox
async def cmd_outbox(args: argparse.Namespace, settings: Settings) -> int:
    """Status of the send queue, or requeue failed messages. Never prints webhook keys or tokens:
    rows are shown by id and their non-secret `dest_key`, errors as the deliverers wrote them (masked)."""
    async with prepared_database(settings) as db:
        queue = db.outbox
        if args.action == "retry":
            if not args.failed and not args.ids:
                print("请指定要重发的消息编号，或用 --failed 重发全部失败消息。例如：salesbot outbox retry 42",
                      file=sys.stderr)
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
        print(f"待发送 pending: {c['pending']}  发送中 sending: {c['sending']}  "
              f"已发送 sent: {c['sent']}  失败 failed: {c['failed']}")
        if status.recent_errors:
            print("最近的错误：")
            for row_id, state, dest_key, attempts, _when, error in status.recent_errors:
                print(f"  #{row_id} [{state}] {dest_key} 尝试 {attempts} 次：{error}")
        return 0


# ------------------------------------------------------------------- jobs
async def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    from storage.schedule_store import all_teams, find_teams

    async with prepared_database(settings) as db:
        now = datetime.now(UTC)
        from storage.calendar_days import day_kinds

        async with db.transaction() as store:
            teams = await (find_teams(store, args.team) if args.team else all_teams(store))
            days = await day_kinds(store, {org.id for org, _ in teams})
        if not teams:
            print(f"找不到团队：{args.team}" if args.team else "还没有任何团队。", file=sys.stderr)
            return 1
        if args.action == "list":
            _list_jobs(teams, days, now)
            return 0
        return await _run_job(db, args, teams, now)


def _list_jobs(teams: list[Any], days: dict[int, Any], now: datetime) -> None:
    """`jobs list`: every team's jobs and when each fires next (the organisation's own holidays counted)."""
    from schedules.calendar import local_now
    from schedules.jobs import JOBS, TeamSchedule

    for org, team in teams:
        schedule = TeamSchedule.of(team.settings, org.timezone, days[org.id])
        print(f"团队 {team.id}「{team.name}」（{org.platform}/{org.corp_key}，{org.timezone}，"
              f"日历 {schedule.calendar}）")
        for kind in JOBS.values():
            if kind.continuous:
                print(f"  {kind.name:<16} {kind.title:<6} 每分钟检查（{schedule.escalate_hours:g} 个工作小时无人接）")
                continue
            slot = kind.next_slot(now, schedule)
            when = local_now(slot.due_at, org.timezone).strftime("%Y-%m-%d %H:%M %a") if slot else "—"
            print(f"  {kind.name:<16} {kind.title:<6} 下次 {when}  （{slot.key if slot else ''}）")


async def _run_job(db: Database, args: argparse.Namespace, teams: list[Any], now: datetime) -> int:
    """`jobs run JOB`: fire it now for the team(s), or with --print only show what it would send."""
    from schedules.firing import fire
    from schedules.jobs import JOBS

    if args.job not in JOBS:
        print(f"没有这个任务：{args.job}。可选：{'、'.join(JOBS)}", file=sys.stderr)
        return 2
    if len(teams) > 1 and not args.team:
        print("请用 --team 指定团队。", file=sys.stderr)
        return 2
    code = 0
    for _org, team in teams:
        result = await fire(db, team.id, args.job, now, force=args.force, preview=args.print)
        if result.status == "already":
            print(f"团队「{team.name}」的 {args.job} 已在本时段（{result.slot}）发送过；要再发一次请加 --force。",
                  file=sys.stderr)
            code = 1
            continue
        if args.print:
            await _print_pushes(args.job, team.name, result.pushes, db.chart_font)
        else:
            print(f"团队「{team.name}」{args.job}（{result.slot}）：已放入发送队列 {len(result.pushes)} 条")
    return code


async def _print_pushes(job: str, team_name: str, pushes: list[Any], font: str | None) -> None:
    from bot.messages import render_mentions

    for push in pushes:
        where = push.destination.get("chat_id") or ",".join(push.destination.get("user_ids") or [])
        print(f"--- {job} → {push.destination['kind']}:{where}")
        if push.message.image is not None:  # the retro's chart: drawn now, written to a file, its path shown
            from bot.adapters.console import drawn_reply, picture_line, save_picture
            from bot.messages import Reply

            shown = await drawn_reply(Reply(push.message.text, image=push.message.image), font)
            if shown is not None and shown.image is not None:
                print(picture_line(shown.image, save_picture(shown.image)))
            continue
        names = push.message.names
        print(render_mentions(push.message.text, lambda uid, names=names: f"@{names.get(uid, uid)}"))
    if not pushes:
        print(f"--- {job}：团队「{team_name}」此刻没有要发送的消息")


def add_parsers(sub: Any) -> None:
    outbox = sub.add_parser("outbox", help="发送队列：查看待发送/失败数量与最近错误，或重发失败消息")
    outbox.add_argument("action", nargs="?", choices=["status", "retry"], default="status")
    outbox.add_argument("ids", nargs="*", type=int, help="要重发的消息编号")
    outbox.add_argument("--failed", action="store_true", help="重发全部失败消息")
    outbox.add_argument("--db", dest="sub_db")

    jobs = sub.add_parser("jobs", help="定时推送：查看下次时间、立即执行")
    jobs.add_argument("action", choices=["list", "run"])
    jobs.add_argument("job", nargs="?",
                      help="任务名：standup、standup_summary、reminders、digest、retro、reclaim、escalation")
    jobs.add_argument("--team", help="团队名、群 ID 或团队编号")
    jobs.add_argument("--force", action="store_true", help="本时段已发送过也再发一次（新的去重键）")
    jobs.add_argument("--print", action="store_true", help="只把消息打印到终端，不发送、不记录")
    jobs.add_argument("--db", dest="sub_db")
