"""One record per company: 合并 of possible duplicates, the company pool (公海 共享), and the list of
possible duplicates a lead sees in 我的.

Customers two teams both held before names were organisation-wide were kept, the younger marked as a
possible duplicate; a lead or admin merges it into the original (`合并 华为 到 华为` — the first name
is looked up in the lead's team, the second is the one kept, in the organisation).
"""

from __future__ import annotations

from datetime import datetime

from bot.messages import IncomingMessage, Reply
from handlers.commands import Args, CommandSet, UserError
from handlers.common import names_of, resolve_customer, who
from handlers.names import normalise_company_name
from storage import merge as merge_store
from storage.models import Customer
from storage.store import Store

commands = CommandSet("客户")

MERGE_EXAMPLE = "合并 华为技术 到 北京华为技术有限公司"
SHARE_POOL_EXAMPLE = "公海 共享 华为"


@commands.command(
    "合并",
    "/merge",
    summary="把重复的客户合并成一个",
    usage="合并 <客户> 到 <客户>",
    example=MERGE_EXAMPLE,
    role="lead",
    details=(
        "主管或管理员把本组的一个客户（常见：标记为“可能重复”的客户）合并到另一个客户（可以在其他组）。"
        "商机、跟进记录、求助、积分和协作人都会移过去，原负责人成为协作人；合并后的客户只保留一个。"
        "标记为可能重复的客户也可以只写：合并 <客户>。"
    ),
)
async def merge(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    source_text, _, target_text = args.text.partition(" 到 ")
    source = await resolve_customer(store, source_text.strip(), example=MERGE_EXAMPLE)
    if source.team_id != store.team.id:
        raise UserError(f"「{source.name}」不是本组的客户，请在它所在的组里合并。")
    target = await _merge_target(store, source, target_text.strip())
    result = await merge_store.merge_customers(store, source, target, now)
    owner = await store.owner_of(target)
    team = await store.team_of(target)
    lines = [
        f"🔗 已把「{source.name}」合并到「{target.name}」（{team.name} · 负责人 {who(owner)}）：",
        f"商机 {result.deals} 个、跟进 {result.followups} 条已移过去。",
    ]
    if result.new_collaborators:
        lines.append("协作人：" + "、".join(who(m) for m in result.new_collaborators))
    return Reply("\n".join(lines), names=names_of(owner, *result.new_collaborators))


async def _merge_target(store: Store, source: Customer, text: str) -> Customer:
    if not text:
        if source.duplicate_of_id is None:
            raise UserError("请写上要合并到哪个客户。", example=MERGE_EXAMPLE)
        original = await store.org_customer_by_id(source.duplicate_of_id)
        if original is None:
            raise UserError(f"「{source.name}」标记的原客户已不存在。", example=MERGE_EXAMPLE)
        return original
    norm = normalise_company_name(text)
    original = await store.org_customer_by_id(source.duplicate_of_id) if source.duplicate_of_id else None
    # `合并 华为 到 华为`: both names read alike, and the duplicate's original is the one meant.
    if original is not None and norm and (norm in original.norm_name or norm in source.norm_name):
        return original
    target = await store.org_customer_by_norm(norm) if norm else None
    if target is None or target.id == source.id:
        target = await resolve_customer(store, text, example=MERGE_EXAMPLE)
    if target.id == source.id:
        raise UserError("不能把客户合并到它自己。", example=MERGE_EXAMPLE)
    return target


async def share_to_company_pool(store: Store, name: str, now: datetime) -> Reply:
    """公海 共享 <客户>: a lead puts one of the team's customers into the company pool."""
    if store.role not in ("lead", "admin"):
        raise UserError("只有主管或管理员可以把客户放到公司公海。", example=SHARE_POOL_EXAMPLE)
    if not name:
        raise UserError("请写上要共享的客户。", example=SHARE_POOL_EXAMPLE)
    customer = await resolve_customer(store, name, example=SHARE_POOL_EXAMPLE)
    if customer.team_id != store.team.id:
        raise UserError(f"「{customer.name}」不是本组的客户。")
    if customer.company_pool:
        raise UserError(f"「{customer.name}」已经在公司公海里了。")
    previous = await store.owner_of(customer)
    await store.share_to_company_pool(customer, now)
    was = f"（原负责人 {who(previous)}）" if previous else ""
    return Reply(
        f"🌐 「{customer.name}」已放到公司公海{was}，公司里任何一个组都可以发送「认领 {customer.name}」领走。",
        names=names_of(previous),
    )


async def duplicate_lines(store: Store) -> list[str]:
    """What a lead reads in 我的 about the team's customers marked as possible duplicates."""
    found = await store.possible_duplicates()
    if not found:
        return []
    lines = [f"⚠️ 可能重复的客户（{len(found)}），其他组也有同名客户，请确认后合并："]
    for customer, original, team in found:
        lines.append(f"· {customer.name} ↔ {original.name}（{team.name}） 发送：合并 {customer.name}")
    return lines
