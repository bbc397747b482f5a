"""Targets for any period and the team board: 目标, 看板.

A target is what a rep (or the whole team) means to reach in a year, quarter, month or week: the won amount
(金额, the default), the number of wins (赢单), new customers (新客户) or follow-ups (跟进). A lead's target for a
rep is the lead's to change; a rep sets their own only where no lead has. Periods without a target of their
own show their share of the longer period's (handlers/targets.py), marked 拆分自.

The board is read on phones in WeCom and DingTalk, so it is short lines with a text progress bar, and no
markdown tables (DingTalk does not render them) or lines starting with # - * |.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from fractions import Fraction

from bot.messages import IncomingMessage, Reply
from handlers.amounts import AmountError, format_amount, parse_amount
from handlers.commands import ROLE_NAMES, Args, CommandSet, UserError
from handlers.common import OPEN_STAGES, local_today, names_of, to_fen, who, yuan, yuan_text
from handlers.periods import Period, current, is_bare_year, is_plausible_year, looks_like_period, parse_period
from handlers.targets import METRIC_NAMES, PeriodProgress, Progress, RowProgress, period_progress
from storage import goals as goal_store
from storage import ledger
from storage.models import Member
from storage.store import Store

commands = CommandSet("目标")

GOAL_EXAMPLE = "目标 @张三 2027Q1 300万"
BOARD_EXAMPLE = "看板 本季（或：本周、本月、本年、2027-03、2027Q1）"
TEAM_WORDS = ("团队", "全组", "本组", "team")
KIND_WORDS: dict[str, str] = {
    "金额": "won_amount",
    "业绩": "won_amount",
    "赢单": "won_count",
    "赢单数": "won_count",
    "成交": "won_count",
    "新客户": "new_customers",
    "新客": "new_customers",
    "新增客户": "new_customers",
    "跟进": "followups",
    "跟进数": "followups",
}
_COUNT_RE = re.compile(r"^(\d{1,5})\s*[个次单]?$")
_COUNT_UNITS = {"won_count": "单", "new_customers": "个", "followups": "次"}


def progress_bar(ratio: float | None, width: int = 8) -> str:
    """`0.52` → `████░░░░ 52%`; over 100% the bar is full and the number tells the rest.

    The bar fills by whole blocks rounded down, so it is only full when the target is met.
    """
    if ratio is None:
        return "░" * width + " 未设目标"
    ratio = max(ratio, 0.0)
    filled = min(int(ratio * width + 1e-9), width)
    return "█" * filled + "░" * (width - filled) + f" {round(ratio * 100)}%"


def show_value(metric: str, value: int | Fraction) -> str:
    """An amount in fen as 52万; a count as a whole number (a split count target rounds to the nearest)."""
    if metric == "won_amount":
        return format_amount(yuan(round(value))) if value else "0"
    return str(round(value))


def _parse_value(metric: str, word: str) -> int:
    if metric == "won_amount":
        try:
            value = to_fen(parse_amount(word))
        except AmountError as err:
            raise UserError(str(err), example=GOAL_EXAMPLE) from None
        if value <= 0:
            raise UserError("目标金额要大于 0。", example=GOAL_EXAMPLE)
        return value
    found = _COUNT_RE.match(word)
    if not found or int(found.group(1)) == 0:
        name = METRIC_NAMES[metric]
        raise UserError(f"{name}目标要写个数，例如 20，而不是「{word}」。", example=f"目标 @张三 本周 {name} 20")
    return int(found.group(1))


def _read_goal_words(words: list[str], today: date) -> tuple[bool, Period | None, str | None, list[str]]:
    """Pick the team word, the period and the kind out of the words, in any order; the rest is the value."""
    team, period, metric, rest = False, None, None, []
    for word in words:
        if word in TEAM_WORDS:
            team = True
        elif word in KIND_WORDS and metric is None:
            metric = KIND_WORDS[word]
        elif looks_like_period(word):
            if period is not None:
                raise UserError("一次只能写一个期间。", example=GOAL_EXAMPLE)
            period = parse_period(word, today, GOAL_EXAMPLE)
        else:
            rest.append(word)
    # 目标 团队 2027 5000万: a bare year next to a value is the period, not a second value; alone
    # (目标 团队 2027) it asks for that year's progress — nobody's target is 2,027 元.
    years = [w for w in rest if is_bare_year(w)]
    if period is None and years and (len(rest) == 2 or (len(rest) == 1 and is_plausible_year(years[0]))):
        period = parse_period(years[0], today, GOAL_EXAMPLE)
        rest.remove(years[0])
    return team, period, metric, rest


@commands.command(
    "目标",
    "/goal",
    summary="设定目标（年/季/月/周）",
    usage="目标 [@成员|团队] [期间] [金额|赢单|新客户|跟进] <数值>",
    example=GOAL_EXAMPLE,
    details=(
        "期间：本月（默认）、本周、本季、本年、2027、2027Q1、2027-03、3月；"
        "种类：金额（默认，赢单金额）、赢单（个数）、新客户、跟进。\n"
        "例：目标 团队 2027 5000万；目标 @张三 本周 跟进 20；目标 10万（自己本月）。\n"
        "没有单独设定的期间按上一级目标平分（年→季→月，月→周按工作日）。\n"
        "成员可以给自己设目标，但不能改主管设的；给别人或团队设目标需要主管或管理员。\n"
        "不带数值发送「目标」或「目标 本季」查看自己的进度；全组进度请看「看板」。"
    ),
    takes_mentions=True,
)
async def set_goal(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    today = local_today(store, now)
    team, period, metric, rest = _read_goal_words(args.words, today)
    if len(args.mentions) > 1 or (team and args.mentions):
        raise UserError("一次只能给一个人（或团队）设目标。", example=GOAL_EXAMPLE)
    target: Member | None = None if team else (args.mentions[0] if args.mentions else store.actor)
    period = period or current("month", today)
    if not rest:
        return await _show_progress(store, target, period, today)
    if len(rest) > 1:
        raise UserError(f"看不懂「{' '.join(rest)}」：目标只写一个数值。", example=GOAL_EXAMPLE)
    metric = metric or "won_amount"
    value = _parse_value(metric, rest[0])
    lead = store.role in ("lead", "admin")
    if (team or (target is not None and target.id != store.actor.id)) and not lead:
        raise UserError("给同事或团队设目标需要主管或管理员；你可以给自己设：目标 50万")
    label = period.label(today)
    what = f"{METRIC_NAMES[metric]}目标"
    if not lead:
        existing = await goal_store.goal_for(store, store.actor.id, period.key, metric)
        if existing is not None and existing.lead_set:
            setters = await store.members_by_id([existing.set_by_id] if existing.set_by_id else [])
            setter = setters.get(existing.set_by_id or 0)
            by = f"{setter.name}（{ROLE_NAMES[existing.set_by_role]}）" if setter else ROLE_NAMES[existing.set_by_role]
            raise UserError(
                f"你的{label}{what} {show_value(metric, existing.target)} 是 {by}设定的，"
                "只有主管或管理员可以修改。可以给还没有主管目标的期间或种类设目标。",
                example="目标 本周 跟进 20",
            )
    before = await goal_store.set_goal(store, target, period.key, metric, value, now)
    owner = "团队" if target is None else who(target)
    unit = "" if metric == "won_amount" else f" {_COUNT_UNITS[metric]}"
    changed = f"（原为 {show_value(metric, before)}{unit}）" if before is not None else ""
    return Reply(f"🎯 已设定 {owner} {label}{what}：{show_value(metric, value)}{unit}{changed}", names=names_of(target))


async def _show_progress(store: Store, member: Member | None, period: Period, today: date) -> Reply:
    progress = await period_progress(store, period, today)
    label = period.label(today)
    if member is None:
        row: RowProgress | None = progress.team
    else:
        row = next((r for r in progress.rows if r.member is not None and r.member.id == member.id), None)
    whose = "团队" if member is None else ("你" if member.id == store.actor.id else member.name)
    if row is None or not row.has_target():
        return Reply(f"{whose}还没有{label}目标。示例：目标 50万、目标 本季 300万、目标 本周 跟进 20")
    return Reply("\n".join([f"🎯 {whose}的{label}目标", _timing(progress), *_row_lines(row, progress)[1:]]))


def _timing(progress: PeriodProgress) -> str:
    """Where in the period we are: 工作日 8/21 · 应完成 38%, or that it is over or yet to come."""
    if not progress.working_days:
        return "这个期间没有工作日"
    if progress.over:
        return f"已结束 · 工作日 {progress.working_days} 天"
    if not progress.running:
        return f"未开始 · 工作日 {progress.working_days} 天"
    share = progress.due_share or 0
    return f"工作日 {progress.elapsed_days}/{progress.working_days} · 应完成 {round(share * 100)}%"


def _metric_line(p: Progress, running: bool) -> str:
    line = f"· {METRIC_NAMES[p.metric]} {show_value(p.metric, p.actual)}"
    if p.target is None:
        return line
    line += f" / {show_value(p.metric, p.target.value)}"
    if p.target.summed:
        line += "（个人目标合计）"
    elif p.target.split_from:
        line += f"（拆分自 {p.target.split_from}）"
    if running and p.due is not None:
        line += f" · 应 {show_value(p.metric, p.due)}"
    return line


def _row_lines(row: RowProgress, progress: PeriodProgress) -> list[str]:
    """The row's bar (won amount's, else the first metric with a target) and one line per metric in play."""
    name = row.member.name if row.member else "团队"
    ratios = [p.ratio for p in row.metrics.values() if p.ratio is not None]
    ratio = row.metrics["won_amount"].ratio if row.metrics["won_amount"].target else (ratios[0] if ratios else None)
    lines = [f"👤 {name} {progress_bar(ratio)}" if row.member else f"团队 {progress_bar(ratio)}"]
    running = progress.running
    counts = []
    for metric, p in row.metrics.items():
        if metric == "won_amount" or p.target is not None:
            lines.append(_metric_line(p, running))
        elif p.actual or metric == "followups":
            counts.append(f"{METRIC_NAMES[metric]} {p.actual}")
    if counts:
        lines.append("· " + " · ".join(counts))
    return lines


@commands.command(
    "看板",
    "/board",
    summary="团队看板（本周/本月/本季/本年）",
    usage="看板 [本周|本月|本季|本年|2027-03|2027Q1]",
    example="看板 本季",
    extra_words=("业绩",),
    details=(
        "每人和团队在这个期间的赢单金额、赢单数、新客户、跟进对目标的进度（没有单独目标时按上级目标拆分），"
        "按工作日算出到今天应完成多少，以及跟进中的商机按阶段（过去的期间显示期末时的情况）。"
    ),
)
async def board(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    today = local_today(store, now)
    period = parse_period(args.text, today, BOARD_EXAMPLE) if args.text.strip() else current("month", today)
    progress = await period_progress(store, period, today)
    past = progress.over
    # A past period shows the pipeline as it stood at its end, rebuilt from the deals' history.
    at = goal_store.local_bounds(store, period.start, period.end)[1] if past else now
    pipeline = await ledger.pipeline_at(store, at)
    stages = {} if past else await goal_store.active_by_stage(store)
    lines = [f"📊 {store.team.name} · {period.label(today)}看板", _timing(progress)]
    lines.extend(_row_lines(progress.team, progress))
    when = "（期末）" if past else ""
    counts = {stage: t.count for stage, t in pipeline.items()}
    value = sum(t.fen for t in pipeline.values())
    # The pipeline's value is what its open deals are worth now (or then): never a win, never in 赢单's line.
    worth = f" · {yuan_text(value)}" if value else ""
    lines.append(f"· 跟进中{when} {sum(counts.values())}{worth}{_stage_detail(counts)}")
    if not progress.rows:
        lines += ["", f"{period.label(today)}还没有成员的目标和成交。设目标：目标 @张三 50万"]
        return Reply("\n".join(lines))
    for row in progress.rows:
        assert row.member is not None
        lines.append("")
        lines.extend(_row_lines(row, progress))
        mine = stages.get(row.member.id, {})
        if mine:
            lines.append(f"· 跟进中 {sum(mine.values())}" + _stage_detail(mine))
    return Reply("\n".join(lines))


def _stage_detail(stages: dict[str, int]) -> str:
    shown = " ".join(f"{s}{stages[s]}" for s in OPEN_STAGES if stages.get(s))
    return f"（{shown}）" if shown else ""
