"""Asking teammates for help: 求助, 接, 解决, 重开, 求助列表.

Requests are numbered per team (#N) so they can be taken and closed by typing a short number in chat;
taking is atomic, so two helpers racing for the same request get a clear answer each.
"""

from __future__ import annotations

import re
from datetime import datetime

from bot.messages import IncomingMessage, Reply
from handlers import points
from handlers.commands import Args, CommandSet, UserError
from handlers.common import days_ago_text, names_of, resolve_customer, who
from storage.models import Customer
from storage.store import HelpView, Store

commands = CommandSet("求助")

ASK_EXAMPLE = "求助 华为 需要一份同行业的报价模板"
TAKE_EXAMPLE = "接 #3"
RESOLVE_EXAMPLE = "解决 #3 模板已发群文件"
REOPEN_EXAMPLE = "重开 #3 模板版本不对"
STATUS_TEXT = {"open": "待接", "taken": "处理中", "resolved": "已解决"}
_NUMBER = re.compile(r"^#?\s*(\d{1,9})\b\s*(.*)$", re.S)


def _number(text: str, example: str) -> tuple[int, str]:
    found = _NUMBER.match(text.strip())
    if not found:
        raise UserError("请写上求助编号。", example=example)
    return int(found.group(1)), found.group(2).strip()


async def _request(store: Store, number: int) -> HelpView:
    view = await store.help_request(number)
    if view is None:
        raise UserError(f"没有找到求助 #{number}。发送「求助列表」查看。")
    return view


async def _maybe_customer(store: Store, text: str) -> tuple[Customer | None, str]:
    """`求助 华为 需要…` names a customer when the first word finds exactly one; otherwise it is all text."""
    head, _, rest = text.partition(" ")
    if not rest.strip():
        return None, text
    try:
        return await resolve_customer(store, head, example=ASK_EXAMPLE), rest.strip()
    except UserError:
        return None, text


@commands.command(
    "求助",
    "/ask",
    summary="向同事求助",
    usage="求助 [客户] <需要什么>",
    example=ASK_EXAMPLE,
    details="发起一个带编号的求助，发到群里；同事发送「接 #编号」来帮忙，完成后「解决 #编号」。",
)
async def ask(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    if not args.text:
        raise UserError("请写上需要什么帮助。", example=ASK_EXAMPLE)
    if len(args.text) > 500:
        raise UserError("求助内容太长了（最多 500 字）。", example=ASK_EXAMPLE)
    customer, content = await _maybe_customer(store, args.text)
    request = await store.open_help_request(content, customer, now)
    me = store.actor
    about = f"\n客户：{customer.name}" if customer else ""
    return Reply(
        f"🆘 求助 #{request.number}（来自 {who(me)}）：{content}{about}\n谁能帮忙？回复「接 #{request.number}」",
        audience="team",
        names=names_of(me),
    )


@commands.command(
    "接", "/take", summary="接下同事的求助", usage="接 #编号", example=TAKE_EXAMPLE, extra_words=("接单",)
)
async def take(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    """接下一个待处理的求助，求助人会收到提醒。"""
    number, _ = _number(args.text, TAKE_EXAMPLE)
    view = await _request(store, number)
    me = store.actor
    if view.request.requester_id == me.id:
        raise UserError(f"求助 #{number} 是你自己发起的，等同事来接吧。")
    if view.request.status != "open":
        helper = f"，已由 {view.helper.name} 接下" if view.helper else ""
        raise UserError(f"求助 #{number} {STATUS_TEXT[view.request.status]}{helper}。")
    if not await store.take_help_request(view.request, now):
        view = await _request(store, number)
        helper = view.helper.name if view.helper else "其他同事"
        raise UserError(f"慢了一步：求助 #{number} 刚刚已由 {helper} 接下。")
    earned = await points.on_help_taken(store, view.request, me, now)
    bonus = f"（协作积分 {points.points_text(earned)}）" if earned else ""
    return Reply(
        f"👍 {who(me)} 接下了 {who(view.requester)} 的求助 #{number}{bonus}：{view.request.content}\n"
        f"完成后发送「解决 #{number}」",
        names=names_of(me, view.requester),
    )


@commands.command("解决", "/resolve", summary="关闭求助", usage="解决 #编号 [说明]", example=RESOLVE_EXAMPLE)
async def resolve(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    """求助人、接单人或主管可以关闭求助，可附一句说明。"""
    number, note = _number(args.text, RESOLVE_EXAMPLE)
    view = await _request(store, number)
    me = store.actor
    request = view.request
    if request.status == "resolved":
        raise UserError(f"求助 #{number} 已经解决了。")
    if me.id not in (request.requester_id, request.helper_id) and store.role not in ("lead", "admin"):
        raise UserError(f"只有求助人或接手的同事可以关闭求助 #{number}。")
    await store.resolve_help_request(request, note or None, now)
    earned = await points.on_help_resolved(store, request, view.helper, now)
    thanks = f"，感谢 {who(view.helper)} 的帮助" if view.helper and view.helper.id != me.id else ""
    if earned:
        thanks += f"（协作积分 {points.points_text(earned)}）"
    note_text = f"\n说明：{note}" if note else ""
    return Reply(f"✅ 求助 #{number} 已解决{thanks}。{note_text}", names=names_of(view.helper))


@commands.command(
    "重开",
    "/reopen",
    summary="重开已解决的求助",
    usage="重开 #编号 [原因]",
    example=REOPEN_EXAMPLE,
    details="求助人或主管可以重开一个已解决的求助：接单人继续处理，解决时所得的协作积分会扣回（接单积分保留），再次解决时重新计分。",
)
async def reopen(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    number, reason = _number(args.text, REOPEN_EXAMPLE)
    view = await _request(store, number)
    request = view.request
    if request.status != "resolved":
        raise UserError(f"求助 #{number} 还没有解决（{STATUS_TEXT[request.status]}），不需要重开。")
    if store.actor.id != request.requester_id and store.role not in ("lead", "admin"):
        raise UserError(f"只有求助人或主管可以重开求助 #{number}。")
    await store.reopen_help_request(request, reason or None, now)
    reversed_ = await points.on_help_reopened(store, request, now)
    lines = [f"🔁 求助 #{number} 已重开：{request.content}"]
    if reason:
        lines.append(f"原因：{reason}")
    if view.helper:
        lines.append(f"请 {who(view.helper)} 继续处理，完成后发送「解决 #{number}」")
    else:
        lines.append(f"谁能帮忙？回复「接 #{number}」")
    for member, pts in reversed_:
        lines.append(f"{member.name} 协作积分 {points.points_text(pts)}（解决积分扣回）")
    return Reply("\n".join(lines), names=names_of(view.helper))


@commands.command("求助列表", "/asks", summary="查看进行中的求助", usage="求助列表", example="求助列表")
async def asks(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    views = await store.open_help_requests()
    if not views:
        return Reply("目前没有进行中的求助。发送「求助 需要什么」发起一个。")
    lines = ["🆘 进行中的求助："]
    for v in views:
        helper = f" · {v.helper.name} 处理中" if v.helper else " · 待接"
        about = f"【{v.customer.name}】" if v.customer else ""
        since = days_ago_text(now, v.request.created_at)
        lines.append(f"#{v.request.number} {about}{v.request.content} — {v.requester.name} · {since}{helper}")
    return Reply("\n".join(lines))
