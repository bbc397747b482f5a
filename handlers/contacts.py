"""联系人: who the rep talks to at a customer, and a warning when that phone is already on another one.

The same buyer filed under a second company name is a 撞单 no name key can see; the phone number can.
The warning names the other customer and its owner only — nothing of that customer's deals or notes.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

from bot.messages import IncomingMessage, Reply
from handlers.commands import Args, CommandSet, UserError
from handlers.common import can_manage, names_of, resolve_customer, split_customer_and_rest, who
from storage.contacts import contacts_of, phone_elsewhere, save_contact
from storage.models import Contact, Customer
from storage.store import Store

commands = CommandSet("客户")

CONTACT_EXAMPLE = "联系人 华为 王强 采购总监 138-0013-8000 wxid_wangqiang"
_PHONE: Final = re.compile(r"^\+?[\d\-()]{7,24}$")
_WECHAT: Final = re.compile(r"^(?:微信[:：]?)?([A-Za-z][-_A-Za-z0-9]{5,19})$")


def contact_line(contact: Contact) -> str:
    """王强（采购总监 · 138-0013-8000 · 微信 wxid_wangqiang）, as 客户 and 联系人 show a contact."""
    parts = [p for p in (contact.title, contact.phone) if p]
    if contact.wechat:
        parts.append(f"微信 {contact.wechat}")
    return f"{contact.name}（{' · '.join(parts)}）" if parts else contact.name


def parse_contact(words: list[str]) -> tuple[str, str | None, str | None, str | None]:
    """(name, title, phone, wechat) from `<姓名> [职位] [电话] [微信]`: a number is the phone, an id the WeChat."""
    if not words:
        raise UserError("请写上联系人的姓名。", example=CONTACT_EXAMPLE)
    name, rest = words[0], words[1:]
    title: list[str] = []
    phone = wechat = None
    for word in rest:
        digits = sum(ch.isdigit() for ch in word)
        if phone is None and _PHONE.match(word) and digits >= 7:
            phone = word
        elif wechat is None and (found := _WECHAT.match(word)):
            wechat = found.group(1)
        elif wechat is None and phone is not None:
            wechat = word.removeprefix("微信:").removeprefix("微信")
        else:
            title.append(word)
    if len(name) > 64 or len(" ".join(title)) > 64 or (wechat and len(wechat) > 64):
        raise UserError("内容太长了（姓名、职位、微信各最多 64 字）。", example=CONTACT_EXAMPLE)
    return name, " ".join(title) or None, phone, wechat


async def _may_edit(store: Store, customer: Customer) -> None:
    if customer.owner_id is None:
        raise UserError(f"「{customer.name}」在公海里，请先认领再添加联系人。", example=f"认领 {customer.name}")
    if not can_manage(store, customer) and not await store.is_collaborator(customer, store.actor):
        raise UserError(f"只有「{customer.name}」的负责人、协作人和主管可以添加联系人。")


@commands.command(
    "联系人",
    "/contact",
    summary="添加或查看客户的联系人",
    usage="联系人 <客户> <姓名> [职位] [电话] [微信]",
    example=CONTACT_EXAMPLE,
    details=(
        "只写客户时列出它的联系人；同名联系人再发一次会更新职位、电话和微信。"
        "电话已经是本企业另一个客户的联系人时会提醒你，并告诉你那个客户和它的负责人（可能是同一买家）。"
    ),
)
async def contact(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    query, rest = split_customer_and_rest(args.text)
    if not query:
        raise UserError("请写上客户和联系人。", example=CONTACT_EXAMPLE)
    customer = await resolve_customer(store, query, example=CONTACT_EXAMPLE)
    if not rest:
        listed = (await contacts_of(store, [customer]))[customer.id]
        if not listed:
            return Reply(f"「{customer.name}」还没有联系人。添加：联系人 {customer.name} 王强 采购总监 13800138000")
        return Reply("\n".join([f"👤 「{customer.name}」的联系人：", *(f"· {contact_line(c)}" for c in listed)]))
    await _may_edit(store, customer)
    name, title, phone, wechat = parse_contact(rest.split())
    saved, created = await save_contact(store, customer, name, now, title=title, phone=phone, wechat=wechat)
    verb = "已添加" if created else "已更新"
    lines = [f"👤 {verb}「{customer.name}」的联系人：{contact_line(saved)}"]
    owners = []
    for other in await phone_elsewhere(store, customer, phone) if phone else []:
        owners.append(other.owner)
        lines.append(
            f"⚠️ 电话 {phone} 也是「{other.customer.name}」（负责人 {who(other.owner)}）的联系人"
            f"「{other.contact.name}」：可能是同一买家，请先和负责人确认，避免撞单。"
        )
    return Reply("\n".join(lines), names=names_of(*owners))
