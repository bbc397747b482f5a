"""Progress on a customer's deal: 跟进, 赢单, 撤销赢单, 输单.

They act on the customer's open deal (商机); with several open the rep names one after the customer
(`跟进 华为 二期 …`). A follow-up on a customer with no open deal is still recorded — a rep keeps in
touch after a win — and the reply says how to open the next deal. Follow-up records carry stage and
amount changes and every change to a deal is a deal event, because the weekly retro and the manager
digest are built from those records rather than from current state.
"""

from __future__ import annotations

from datetime import date, datetime

from bot.messages import IncomingMessage, Reply
from handlers import credit_split, points
from handlers.amounts import AmountError, format_amount, parse_amount
from handlers.commands import Args, CommandSet, UserError
from handlers.common import (
    OPEN_STAGES,
    STAGES,
    can_manage,
    local_today,
    names_customer_first,
    resolve_customer,
    split_customer_and_rest,
    to_fen,
    yuan,
)
from handlers.dates import DateError, format_date, parse_date
from handlers.deal_choice import DEAL_STATUS_NAMES, choose_deal, deal_label
from handlers.options import AMOUNT, EXPECTED, NEXT, STAGE, STAGE_ALIASES, STAGE_CHOICES
from storage.deals import deal_state
from storage.models import Customer, Deal, Member
from storage.store import Store

commands = CommandSet("跟进")

PROGRESS_EXAMPLE = "跟进 华为 已约下周拜访 阶段:初访 金额:50万 下次:周五"
EXPECTED_EXAMPLE = "跟进 华为 已报价 阶段:报价 预计:12-20"
DEAL_PROGRESS_EXAMPLE = "跟进 华为 <商机> 已约下周拜访 阶段:报价"


async def writable_customer(store: Store, query: str, example: str) -> Customer:
    """Only the owner and collaborators may post progress on a customer."""
    customer = await resolve_customer(store, query, example=example)
    if customer.owner_id is None:
        raise UserError(f"「{customer.name}」在公海里，请先认领再跟进。", example=f"认领 {customer.name}")
    if customer.owner_id != store.actor.id and not await store.is_collaborator(customer, store.actor):
        raise UserError(
            f"只有「{customer.name}」的负责人和协作人可以提交跟进。"
            f"如需参与，请负责人发送：协作 {customer.name} @{store.actor.name}"
        )
    return customer


async def _open_deal_of(store: Store, customer: Customer, rest: str, example: str) -> tuple[Deal, str]:
    """The open deal a 赢单 / 输单 acts on; a customer with none is told how to open one."""
    deal, rest = choose_deal(customer, await store.open_deals(customer), rest, example=example)
    if deal is None:
        raise UserError(await _no_open_deal(store, customer), example=f"商机 {customer.name} 二期 金额:50万")
    return deal, rest


async def _no_open_deal(store: Store, customer: Customer) -> str:
    state = deal_state(await store.deals_of(customer))
    ended = f"（最近一个{DEAL_STATUS_NAMES[state]}）" if state in ("won", "lost") else ""
    return f"「{customer.name}」没有进行中的商机{ended}。复购或二期请先开一个商机：商机 {customer.name} <名称>"


def parse_stage(value: str) -> str:
    stage = STAGE_ALIASES.get(value, value)
    if stage not in STAGES:
        raise UserError(
            f"阶段「{value}」不认识。可选：{STAGE_CHOICES}。", example=PROGRESS_EXAMPLE
        )
    return stage


def parse_amount_fen(value: str) -> int:
    try:
        return to_fen(parse_amount(value))
    except AmountError as err:
        raise UserError(str(err)) from None


@commands.command(
    "跟进",
    "/progress",
    summary="记录客户跟进进展",
    usage="跟进 <客户> <内容> [阶段:<阶段>] [金额:<金额>] [下次:<日期>] [预计:<日期>]",
    example=PROGRESS_EXAMPLE,
    options=(STAGE, AMOUNT, NEXT, EXPECTED, credit_split.SPLIT),
    reads_first=names_customer_first,
    details=(
        "记录一次跟进。阶段：线索 → 初访 → 需求确认 → 报价 → 谈判 → 赢单/输单。\n"
        "金额可写 50万、1.2亿、300000、30k；下次日期可写 明天、周五、下周一、12-05、2026-12-05。\n"
        "只有负责人和协作人可以提交。也可以写英文 stage: amount: next:，冒号也可以换成空格（阶段 谈判）。\n"
        "阶段写赢单时可以同时写业绩分成：分成:张三60,李四40（不写按团队默认）。\n"
        "预计:<日期> 写商机预计成交的日期，月度预测按它计入当月。"
    ),
)
async def progress(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    query, content = split_customer_and_rest(args.text)
    if not query:
        raise UserError("请写上客户和跟进内容。", example=PROGRESS_EXAMPLE)
    customer = await writable_customer(store, query, PROGRESS_EXAMPLE)
    deal, content = choose_deal(customer, await store.open_deals(customer), content, example=DEAL_PROGRESS_EXAMPLE)
    if not content and not args.options:
        raise UserError("请写上这次跟进的内容。", example=PROGRESS_EXAMPLE)
    stage = parse_stage(args.options["阶段"]) if "阶段" in args.options else None
    amount = parse_amount_fen(args.options["金额"]) if "金额" in args.options else None
    if deal is None and (stage or amount is not None or "预计" in args.options):
        # Stage, amount and 预计 belong to a deal: with none open there is nothing they could move.
        raise UserError(await _no_open_deal(store, customer), example=f"商机 {customer.name} 二期 金额:50万")
    today = local_today(store, now)
    next_on = None
    if "下次" in args.options:
        try:
            next_on = parse_date(args.options["下次"], today)
        except DateError as err:
            raise UserError(str(err)) from None
        if next_on < today:
            raise UserError(
                f"下次跟进日期 {next_on.isoformat()} 已经过去了，请写今天或以后的日期。", example=PROGRESS_EXAMPLE
            )
    expected = _expected_date(args, today)
    status = {"赢单": "won", "输单": "lost"}.get(stage or "")
    old_stage = deal.stage if deal else None
    if not content:
        content = "更新" + "、".join(k for k in ("阶段", "金额", "下次", "预计") if k in args.options)
    shares = await _shares(store, customer, args) if status == "won" and deal else []
    if "分成" in args.options and status != "won":
        raise UserError("业绩分成只在赢单时写。", example=f"跟进 {customer.name} 签约了 阶段:赢单 分成:张三60,李四40")
    await store.add_followup(
        customer, content, now, deal=deal, stage=stage, amount_fen=amount, next_on=next_on, status=status,
        split=credit_split.as_split(shares), expected_on=expected,
    )
    bonus = await _award_collaborators(store, customer, now) if status == "won" else ""
    shared = credit_split.split_text(shares, deal.amount_fen, customer.owner_id) if shares and deal else ""
    parts = [f"📝 已记录{deal_label(customer, deal) if deal else f'「{customer.name}」'}的跟进"]
    if stage and stage != old_stage:
        parts.append(f"阶段：{old_stage} → {stage}")
    if amount is not None:
        parts.append(f"金额：{format_amount(yuan(amount))}")
    if next_on:
        parts.append(f"下次跟进：{format_date(next_on, today)}")
    if expected:
        parts.append(f"预计成交：{format_date(expected, today)}")
    parts += [line for line in (shared, bonus) if line]
    if deal is None:
        parts.append(await _no_open_deal(store, customer))
    return Reply("\n".join(parts))


def _expected_date(args: Args, today: date) -> date | None:
    """预计:<日期> — when the deal is expected to close (the month's forecast counts it then)."""
    if "预计" not in args.options:
        return None
    try:
        expected = parse_date(args.options["预计"], today)
    except DateError as err:
        raise UserError(str(err), example=EXPECTED_EXAMPLE) from None
    if expected < today:
        raise UserError(f"预计成交日期 {expected.isoformat()} 已经过去了。", example=EXPECTED_EXAMPLE)
    return expected


async def _shares(store: Store, customer: Customer, args: Args) -> list[tuple[Member, int]]:
    """Who is credited for a win: the typed 分成, else the team's default (handlers.credit_split)."""
    if "分成" in args.options:
        return await credit_split.parse_split(store, args.options["分成"])
    return await credit_split.default_split(store, customer)


async def _award_collaborators(store: Store, customer: Customer, now: datetime) -> str:
    """A won deal gives each collaborator points, in the same transaction as the win."""
    collaborators = [m for m in await store.collaborators(customer) if m.id != customer.owner_id]
    if not collaborators:
        return ""
    earned = await points.on_deal_won(store, customer, collaborators, now)
    if not earned:
        return ""
    names = "、".join(m.name for m in collaborators)
    return f"协作人 {names} 协作积分各 {points.points_text(earned)}"


WON_EXAMPLE = "赢单 华为 120万"


@commands.command(
    "赢单",
    "/won",
    summary="标记赢单",
    usage="赢单 <客户> [商机] [金额] [分成:<成员百分比>]",
    example=WON_EXAMPLE,
    options=(credit_split.SPLIT,),
    reads_first=names_customer_first,
    details=(
        "把客户的商机标记为赢单，可同时写上成交金额；客户有多个商机时在客户名后写上商机名称。\n"
        "几个人一起拿下的单可以写业绩分成：赢单 华为 200万 分成:张三60,李四40（团队成员，百分比加起来等于 100，"
        "英文 split:）。不写时按团队默认（设置 分成 负责人/平分）。目标、看板和「排行 业绩」按分成后的金额计算。"
    ),
)
async def won(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    query, rest = split_customer_and_rest(args.text)
    customer = await writable_customer(store, query, WON_EXAMPLE)
    deal, rest = await _open_deal_of(store, customer, rest, "赢单 华为 <商机> 120万")
    amount = parse_amount_fen(rest) if rest else None
    shares = await _shares(store, customer, args)
    await store.add_followup(
        customer, "赢单", now, deal=deal, stage="赢单", amount_fen=amount, status="won",
        split=credit_split.as_split(shares),
    )
    bonus = await _award_collaborators(store, customer, now)
    final = yuan(deal.amount_fen)
    lines = [f"🎉 恭喜！{deal_label(customer, deal)}赢单，金额 {format_amount(final)}。"]
    lines += [t for t in (credit_split.split_text(shares, deal.amount_fen, customer.owner_id), bonus) if t]
    return Reply("\n".join(lines))


REVERT_EXAMPLE = "撤销赢单 华为 谈判"


@commands.command(
    "撤销赢单",
    "/unwon",
    summary="把误标的赢单退回跟进中",
    usage="撤销赢单 <客户> [商机] [退回的阶段]",
    example=REVERT_EXAMPLE,
    details=(
        "负责人或主管可以把一个已赢单的商机退回跟进中（默认退回「谈判」阶段），会记一条跟进记录，"
        "赢单时协作人所得的协作积分会扣回；之后再次赢单会重新计分。"
    ),
)
async def revert_won(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    query, rest = split_customer_and_rest(args.text)
    customer = await resolve_customer(store, query, example=REVERT_EXAMPLE)
    won_deals = [d for d in await store.deals_of(customer) if d.status == "won"]
    if not won_deals:
        state = deal_state(await store.deals_of(customer))
        raise UserError(f"「{customer.name}」当前{DEAL_STATUS_NAMES.get(state, '没有商机')}，不是赢单状态。")
    if not can_manage(store, customer):
        raise UserError(f"只有「{customer.name}」的负责人或主管可以撤销赢单。")
    deal, rest = choose_deal(customer, won_deals, rest, example="撤销赢单 华为 <商机> 谈判")
    assert deal is not None  # won_deals is not empty
    stage = parse_stage(rest.strip()) if rest.strip() else "谈判"
    if stage not in OPEN_STAGES:
        raise UserError(f"撤销赢单后要退回一个跟进中的阶段：{' → '.join(OPEN_STAGES)}。", example=REVERT_EXAMPLE)
    await store.add_followup(customer, f"撤销赢单，退回{stage}", now, deal=deal, stage=stage, status="open")
    reversed_ = await points.on_deal_reverted(store, customer, now)
    lines = [f"↩️ 已撤销{deal_label(customer, deal)}的赢单，退回「{stage}」阶段，继续跟进。"]
    for member, pts in reversed_:
        lines.append(f"{member.name} 协作积分 {points.points_text(pts)}（赢单积分扣回）")
    return Reply("\n".join(lines))


LOST_EXAMPLE = "输单 华为 预算被砍"


@commands.command("输单", "/lost", summary="标记输单", usage="输单 <客户> [原因]", example=LOST_EXAMPLE,
                  reads_first=names_customer_first)
async def lost(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    """把客户的商机标记为输单，原因会记在商机和跟进记录里，供复盘使用。"""
    query, rest = split_customer_and_rest(args.text)
    customer = await writable_customer(store, query, LOST_EXAMPLE)
    deal, reason = await _open_deal_of(store, customer, rest, "输单 华为 <商机> 预算被砍")
    await store.add_followup(
        customer,
        f"输单：{reason}" if reason else "输单",
        now,
        deal=deal,
        stage="输单",
        status="lost",
        lost_reason=reason or None,
    )
    tail = f"原因：{reason}" if reason else "可以补充原因：输单 客户 原因"
    return Reply(f"已记录{deal_label(customer, deal)}输单。{tail}")
