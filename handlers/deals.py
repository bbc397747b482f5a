"""Opening a deal (商机): 商机 <客户> [名称] [金额:…] [阶段:…] [预计:<日期>].

A customer has deals over time and at once — the first one opens with the claim, repeat business
(复购) and a second phase (二期) open their own, also on a customer whose earlier deals were won or
lost. 跟进 / 赢单 / 输单 / 撤销赢单 then act on the open deal (handlers.followups).
"""

from __future__ import annotations

from datetime import datetime

from bot.messages import IncomingMessage, Reply
from handlers.amounts import format_amount
from handlers.commands import Args, CommandSet, UserError
from handlers.common import OPEN_STAGES, local_today, split_customer_and_rest, yuan
from handlers.dates import DateError, format_date, parse_date
from handlers.deal_choice import FIRST_DEAL, deal_label
from handlers.followups import parse_amount_fen, parse_stage, writable_customer
from handlers.options import AMOUNT, EXPECTED, STAGE
from storage.store import Store

commands = CommandSet("商机")

DEAL_EXAMPLE = "商机 华为 二期 金额:80万 阶段:需求确认 预计:2027-03-31"


@commands.command(
    "商机",
    "/deal",
    summary="为客户开一个新商机（复购、二期）",
    usage="商机 <客户> [名称] [金额:<金额>] [阶段:<阶段>] [预计:<日期>]",
    example=DEAL_EXAMPLE,
    options=(AMOUNT, STAGE, EXPECTED),
    details=(
        "认领客户时会自动开一个「首单」商机；复购、二期等新的生意用「商机」再开一个，已赢单或已输单的客户也可以。\n"
        "一个客户有多个进行中的商机时，跟进/赢单/输单要在客户名后写上商机名称，例如：跟进 华为 二期 已报价。\n"
        "只有负责人和协作人可以开商机。"
    ),
)
async def open_deal(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    query, name = split_customer_and_rest(args.text)
    if not query:
        raise UserError("请写上客户和商机名称。", example=DEAL_EXAMPLE)
    customer = await writable_customer(store, query, DEAL_EXAMPLE)
    if len(name) > 30:
        raise UserError("商机名称太长了（最多 30 字）。", example=DEAL_EXAMPLE)
    if " " in name:
        raise UserError("商机名称里不能有空格（跟进时要写在客户名后面）。", example=DEAL_EXAMPLE)
    stage = parse_stage(args.options["阶段"]) if "阶段" in args.options else "线索"
    if stage not in OPEN_STAGES:
        raise UserError(f"新商机的阶段要是跟进中的阶段：{' → '.join(OPEN_STAGES)}。", example=DEAL_EXAMPLE)
    amount = parse_amount_fen(args.options["金额"]) if "金额" in args.options else None
    today = local_today(store, now)
    expected = None
    if "预计" in args.options:
        try:
            expected = parse_date(args.options["预计"], today)
        except DateError as err:
            raise UserError(str(err)) from None
        if expected < today:
            raise UserError(f"预计成交日期 {expected.isoformat()} 已经过去了。", example=DEAL_EXAMPLE)
    existing = await store.deals_of(customer)
    if not name:
        name = FIRST_DEAL if not existing else f"第{len(existing) + 1}单"
    if any(d.name == name and d.status == "open" for d in existing):
        raise UserError(f"「{customer.name}」已经有一个进行中的商机叫「{name}」，换个名称吧。", example=DEAL_EXAMPLE)
    deal = await store.open_deal(customer, name, now, stage=stage, amount_fen=amount, expected_close_on=expected)
    parts = [f"💼 已为{deal_label(customer, deal)}开商机「{deal.name}」 · 阶段：{stage}"]
    if amount is not None:
        parts.append(f"金额：{format_amount(yuan(amount))}")
    if expected is not None:
        parts.append(f"预计成交：{format_date(expected, today)}")
    open_count = sum(1 for d in existing if d.status == "open") + 1
    if open_count > 1:
        parts.append(
            f"「{customer.name}」现在有 {open_count} 个进行中的商机，跟进时写上商机名称：跟进 {customer.name} {name} …"
        )
    return Reply("\n".join(parts))
