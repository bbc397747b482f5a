"""Helpers every handler module shares: finding a customer by a partial name, local dates, wording."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from bot.messages import mention
from handlers.amounts import format_amount
from handlers.commands import UserError
from handlers.names import find_near_matches, normalise_company_name, places_in
from storage.models import Customer, Member
from storage.store import Store

STAGES: tuple[str, ...] = ("线索", "初访", "需求确认", "报价", "谈判", "赢单", "输单")
OPEN_STAGES: tuple[str, ...] = STAGES[:5]


def local_now(store: Store, now: datetime) -> datetime:
    return now.astimezone(ZoneInfo(store.org.timezone))


def local_today(store: Store, now: datetime) -> date:
    return local_now(store, now).date()


def local_day_start(store: Store, now: datetime) -> datetime:
    local = local_now(store, now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def fmt_day(store: Store, moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(ZoneInfo(store.org.timezone)).strftime("%Y-%m-%d")


def who(member: Member | None) -> str:
    """A mention marker for a member, or 公海 when there is nobody."""
    return mention(member.user_id) if member else "公海"


def names_of(*members: Member | None) -> dict[str, str]:
    return {m.user_id: m.name for m in members if m is not None}


def split_customer_and_rest(text: str) -> tuple[str, str]:
    """First word is the customer; a quoted name (「…」, "…") may contain spaces."""
    text = text.strip()
    for open_q, close_q in (("「", "」"), ('"', '"'), ("“", "”"), ("《", "》")):
        if text.startswith(open_q) and close_q in text[1:]:
            end = text.index(close_q, 1)
            return text[1:end].strip(), text[end + 1 :].strip()
    head, _, rest = text.partition(" ")
    return head, rest.strip()


def names_customer_first(text: str) -> tuple[str, ...] | None:
    """`reads_first` of a command whose first word is a customer (跟进, 赢单, 输单): the name it will look up,
    normalised and as written (`resolve_customer`)."""
    query = split_customer_and_rest(text)[0].strip()
    norm = normalise_company_name(query) if query else ""
    return ("customer", norm, query) if norm else None


async def resolve_customer(store: Store, query: str, *, example: str) -> Customer:
    """Find one customer of the team from a partial or differently written name.

    `华为` finds 北京华为技术有限公司 when it is the only match; an ambiguous query lists candidates so
    the rep can write more, and an unknown one suggests look-alikes.
    """
    query = query.strip()
    if not query:
        raise UserError("请写上客户名称。", example=example)
    norm = normalise_company_name(query)
    exact, candidates = await store.find_customer(norm, query)
    if exact is not None:
        return exact
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        narrowed = await _narrow(store, query, candidates)
        if len(narrowed) == 1:
            return narrowed[0]
        listed = "\n".join(f"{i}. {c.name}" for i, c in enumerate(candidates[:8], 1))
        more = f"\n……共 {len(candidates)} 个" if len(candidates) > 8 else ""
        raise UserError(f"「{query}」对应多个客户，请写得更完整些：\n{listed}{more}")
    names = await store.all_customer_names()
    near = find_near_matches(norm, [(cid, n) for cid, n, _ in names], limit=3)
    if near:
        by_id = {cid: display for cid, _, display in names}
        hints = "、".join(f"「{by_id[cid]}」" for cid, _ in near)
        raise UserError(f"找不到客户「{query}」。你是不是指：{hints}？")
    raise UserError(f"找不到客户「{query}」。新客户请先认领。", example=f"认领 {query}")


async def _narrow(store: Store, query: str, candidates: list[Customer]) -> list[Customer]:
    """Of several matches, the one the rep means: the exact name, then the place they wrote, then their own.

    `上海腾讯` picks 上海腾讯科技 over 深圳市腾讯计算机系统 (the key drops the place, the rep did not), and a
    pool customer 华为技木 does not stand between a rep and the 北京华为 they own or collaborate on.
    """
    same_name = [c for c in candidates if c.name == query]
    if len(same_name) == 1:
        return same_name
    places = places_in(query)
    if places:
        in_place = [c for c in candidates if set(places) & set(places_in(c.name))]
        if in_place:
            candidates = in_place
    if len(candidates) > 1:
        mine = [
            c for c in candidates if c.owner_id == store.actor.id or await store.is_collaborator(c, store.actor)
        ]
        if mine:
            candidates = mine
    return candidates


def can_manage(store: Store, customer: Customer) -> bool:
    """Owner, or a lead/admin of the team."""
    return customer.owner_id == store.actor.id or store.role in ("lead", "admin")


def days_ago_text(now: datetime, then: datetime) -> str:
    delta = now - then
    if delta.days >= 1:
        return f"{delta.days}天前"
    hours = int(delta.total_seconds() // 3600)
    if hours >= 1:
        return f"{hours}小时前"
    minutes = max(int(delta.total_seconds() // 60), 0)
    return f"{minutes}分钟前" if minutes else "刚刚"


def yuan(fen: int | None) -> Decimal | None:
    """Money is stored in fen; people read yuan."""
    return None if fen is None else Decimal(fen) / 100


def yuan_text(fen: int | None) -> str:
    """Fen as people say it: `120万`, `3,500元` (handlers.amounts.format_amount)."""
    return format_amount(yuan(fen))


def to_fen(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())
