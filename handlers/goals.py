"""Monthly targets and the team board: 目标, 看板.

A target is the won amount a rep (or the whole team) means to close in a month; a second metric counts
new customers. The board is read on phones in WeCom and DingTalk, so it is short lines with a text
progress bar, and no markdown tables (DingTalk does not render them) or lines starting with # - * |.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from bot.messages import IncomingMessage, Reply
from handlers.amounts import AmountError, format_amount, parse_amount
from handlers.commands import Args, CommandSet, UserError
from handlers.common import OPEN_STAGES, local_today, names_of, to_fen, who, yuan
from storage import goals as goal_store
from storage.goals import GoalProgress
from storage.models import Member
from storage.store import Store

commands = CommandSet("目标")

GOAL_EXAMPLE = "目标 @张三 100万 12月"
TEAM_WORDS = ("团队", "全组", "本组", "team")
NEW_CUSTOMER_WORDS = ("新客户", "新客", "新增客户")
_MONTH_RE = re.compile(r"^(?:(\d{4})\s*[-/.年]\s*)?(\d{1,2})\s*月?$")
_COUNT_RE = re.compile(r"^(\d{1,5})\s*个?$")


def progress_bar(ratio: float | None, width: int = 8) -> str:
    """`0.52` → `████░░░░ 52%`; over 100% the bar is full and the number tells the rest.

    The bar fills by whole blocks rounded down, so it is only full when the target is met.
    """
    if ratio is None:
        return "░" * width + " 未设目标"
    ratio = max(ratio, 0.0)
    filled = min(int(ratio * width + 1e-9), width)
    return "█" * filled + "░" * (width - filled) + f" {round(ratio * 100)}%"


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def parse_month(text: str, today: date, example: str = GOAL_EXAMPLE) -> str:
    """本月/下月/上月, 12月, 2026-12, 2026年12月 → "YYYY-MM". A bare month already past means next year."""
    text = text.strip()
    if text in ("本月", "这个月", "当月"):
        return month_key(today)
    if text in ("下月", "下个月"):
        return month_key((today.replace(day=1) + timedelta(days=32)).replace(day=1))
    if text in ("上月", "上个月"):
        return month_key(today.replace(day=1) - timedelta(days=1))
    found = _MONTH_RE.match(text)
    if not found or (found.group(1) is None and not text.endswith("月")):
        raise UserError(f"月份「{text}」看不懂，可以写：本月、下月、12月、2026-12。", example=example)
    month = int(found.group(2))
    if not 1 <= month <= 12:
        raise UserError(f"月份「{text}」不存在。", example=example)
    # Without a year, a month more than half a year back means next year's.
    year = int(found.group(1)) if found.group(1) else today.year + (1 if month < today.month - 6 else 0)
    return f"{year:04d}-{month:02d}"


def _looks_like_month(word: str) -> bool:
    return word in ("本月", "这个月", "当月", "下月", "下个月", "上月", "上个月") or bool(
        re.match(r"^(\d{4}\s*[-/.年]\s*\d{1,2}\s*月?|\d{1,2}\s*月)$", word)
    )


def month_label(month: str, today: date) -> str:
    year, mon = month.split("-")
    return f"{int(mon)}月" if int(year) == today.year else f"{year}年{int(mon)}月"


@commands.command(
    "目标",
    "/goal",
    summary="设定月度目标",
    usage="目标 [@成员|团队] <金额> [月份]；目标 [@成员] 新客户 <个数> [月份]",
    example=GOAL_EXAMPLE,
    details=(
        "设定一个月的赢单金额目标（默认本月），也可以设新客户数目标：目标 @张三 新客户 10。\n"
        "成员可以给自己设目标；给别人或给团队（目标 团队 500万）设目标需要主管或管理员。\n"
        "不带参数发送「目标」查看自己本月的进度；全组进度请看「看板」。"
    ),
    takes_mentions=True,
)
async def set_goal(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    today = local_today(store, now)
    words = args.words
    team = False
    if words and words[0] in TEAM_WORDS:
        team, words = True, words[1:]
    if not words and not args.mentions and not team:
        return await _my_progress(store, today)
    if len(args.mentions) > 1 or (team and args.mentions):
        raise UserError("一次只能给一个人（或团队）设目标。", example=GOAL_EXAMPLE)
    target: Member | None = None if team else (args.mentions[0] if args.mentions else store.actor)
    if (team or (target is not None and target.id != store.actor.id)) and store.role not in ("lead", "admin"):
        raise UserError("给同事或团队设目标需要主管或管理员；你可以给自己设：目标 50万")
    month = month_key(today)
    if words and _looks_like_month(words[-1]) and len(words) > 1:
        month, words = parse_month(words[-1], today), words[:-1]
    metric = "won_amount"
    if words and words[0] in NEW_CUSTOMER_WORDS:
        metric, words = "new_customers", words[1:]
    if len(words) != 1:
        raise UserError("请写上目标金额（或：新客户 个数）。", example=GOAL_EXAMPLE)
    if metric == "won_amount":
        try:
            value = to_fen(parse_amount(words[0]))
        except AmountError as err:
            raise UserError(str(err)) from None
        if value <= 0:
            raise UserError("目标金额要大于 0。", example=GOAL_EXAMPLE)
        shown = format_amount(yuan(value))
    else:
        found = _COUNT_RE.match(words[0])
        if not found or int(found.group(1)) == 0:
            raise UserError(f"新客户目标要写个数，例如 10，而不是「{words[0]}」。", example="目标 @张三 新客户 10")
        value = int(found.group(1))
        shown = f"{value} 个"
    before = await goal_store.set_goal(store, target, month, metric, value, now)
    label = month_label(month, today)
    what = "赢单目标" if metric == "won_amount" else "新客户目标"
    owner = "团队" if target is None else who(target)
    changed = ""
    if before is not None:
        old = format_amount(yuan(before)) if metric == "won_amount" else f"{before} 个"
        changed = f"（原为 {old}）"
    return Reply(f"🎯 已设定 {owner} {label}{what}：{shown}{changed}", names=names_of(target))


async def _my_progress(store: Store, today: date) -> Reply:
    month = month_key(today)
    rows = await goal_store.goal_progress(store, month)
    mine = next((r for r in rows if r.member is not None and r.member.id == store.actor.id), None)
    label = month_label(month, today)
    if mine is None or (mine.target_fen is None and mine.won_fen == 0 and mine.new_target is None):
        return Reply(f"你还没有设{label}目标。示例：目标 50万")
    return Reply("\n".join([f"🎯 你的{label}目标", *_member_lines(mine, None, None)[1:]]))


def _member_lines(row: GoalProgress, stages: dict[str, int] | None, week_followups: int | None) -> list[str]:
    name = row.member.name if row.member else "团队"
    lines = [f"👤 {name} {progress_bar(row.ratio)}"]
    won = format_amount(yuan(row.won_fen)) if row.won_fen else "0"
    target = f" / {format_amount(yuan(row.target_fen))}" if row.target_fen else ""
    lines.append(f"· 赢单 {won}{target}")
    if row.new_target is not None or row.new_customers:
        goal = f" / {row.new_target}" if row.new_target is not None else ""
        lines.append(f"· 新客户 {row.new_customers}{goal}")
    if stages is not None or week_followups is not None:
        active = sum((stages or {}).values())
        detail = ""
        if stages:
            detail = "（" + " ".join(f"{s}{stages[s]}" for s in OPEN_STAGES if stages.get(s)) + "）"
        lines.append(f"· 跟进中 {active}{detail} · 本周跟进 {week_followups or 0}")
    return lines


@commands.command(
    "看板",
    "/board",
    summary="本月团队看板",
    usage="看板 [月份]",
    example="看板",
    extra_words=("业绩",),
    details="每人本月赢单金额对目标的进度、跟进中客户按阶段、本周跟进次数，以及团队合计对团队目标。",
)
async def board(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    today = local_today(store, now)
    month = parse_month(args.text, today, "看板 12月") if args.text else month_key(today)
    label = month_label(month, today)
    rows = await goal_store.goal_progress(store, month)
    team_row = rows[-1]
    stages = await goal_store.active_by_stage(store)
    monday = today - timedelta(days=today.weekday())
    week_start, week_end = goal_store.local_bounds(store, monday, monday + timedelta(days=7))
    followups = await goal_store.followup_counts(store, week_start, week_end)
    by_member = {r.member.id: r for r in rows[:-1] if r.member is not None}
    extra_ids = [m for m in set(stages) | set(followups) if m not in by_member]
    for member in (await store.members_by_id(extra_ids)).values():
        by_member[member.id] = GoalProgress(member=member, won_fen=0, target_fen=None)
    ordered = [r for r in rows[:-1] if r.member is not None] + [
        by_member[m] for m in sorted(extra_ids) if m in by_member
    ]

    lines = [f"📊 {store.team.name} · {label}看板"]
    team_stages: dict[str, int] = {}
    for per in stages.values():
        for stage, n in per.items():
            team_stages[stage] = team_stages.get(stage, 0) + n
    lines.append(f"团队 {progress_bar(team_row.ratio)}")
    target = ""
    if team_row.target_fen:
        summed = "（个人目标合计）" if team_row.target_is_sum else ""
        target = f" / {format_amount(yuan(team_row.target_fen))}{summed}"
    lines.append(f"· 赢单 {format_amount(yuan(team_row.won_fen)) if team_row.won_fen else '0'}{target}")
    if team_row.new_target is not None or team_row.new_customers:
        goal = f" / {team_row.new_target}" if team_row.new_target is not None else ""
        lines.append(f"· 新客户 {team_row.new_customers}{goal}")
    active_total = sum(team_stages.values())
    lines.append(f"· 跟进中 {active_total} · 本周跟进 {sum(followups.values())}")
    if team_stages:
        lines.append("· " + " · ".join(f"{s} {team_stages[s]}" for s in OPEN_STAGES if team_stages.get(s)))
    if not ordered:
        lines.append("")
        lines.append("本月还没有目标和成交。设目标：目标 50万")
        return Reply("\n".join(lines))
    for row in ordered:
        assert row.member is not None
        lines.append("")
        lines.extend(_member_lines(row, stages.get(row.member.id, {}), followups.get(row.member.id, 0)))
    return Reply("\n".join(lines))
