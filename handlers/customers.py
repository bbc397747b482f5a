"""Claiming and handing over customers: 认领, 释放, 转交, 协作, 客户, 我的, 公海.

The heart of the product is 撞单 protection: two reps must never both believe they own one customer.
Names are compared after normalisation (region prefixes and company suffixes removed), an exact match
owned by someone else is refused with the owner's name and claim date, and a near match asks for an
explicit confirmation before a look-alike customer is created.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from bot.messages import IncomingMessage, Reply
from handlers.amounts import format_amount
from handlers.commands import Args, CommandSet, UserError
from handlers.common import (
    can_manage,
    days_ago_text,
    fmt_day,
    local_day_start,
    local_today,
    names_of,
    resolve_customer,
    who,
    yuan,
)
from handlers.contacts import contact_line
from handlers.dates import format_date
from handlers.deal_choice import DEAL_STATUS_NAMES, deal_line, stage_summary
from handlers.merge import duplicate_lines, share_to_company_pool
from handlers.names import find_near_matches, normalise_company_name
from storage.contacts import contacts_of
from storage.deals import deal_state
from storage.models import Customer, Deal, Member
from storage.store import Store

commands = CommandSet("客户")

CLAIM_EXAMPLE = "认领 北京华为技术有限公司"
CONFIRM_WORDS = ("确认", "确定")


@commands.command(
    "认领",
    "/claim",
    summary="认领客户（自动查重，防撞单）",
    usage="认领 <客户名> [确认]",
    example=CLAIM_EXAMPLE,
    details=(
        "认领一个新客户，或从公海领回客户。\n"
        "· 名称会自动去掉地区前缀和“有限公司”等后缀再查重：已被他人认领的客户会被拒绝，并告诉你负责人和认领日期。\n"
        "· 名称相似（可能是同一家）时会先提醒你；确认是不同客户，在末尾加“确认”再发一次。\n"
        "· 每人跟进中的客户数有上限；被释放或掉入公海的客户，原负责人需过冷却期才能再认领。"
    ),
)
async def claim(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    name = args.text
    confirmed = False
    for word in CONFIRM_WORDS:
        if name.endswith(" " + word):
            name, confirmed = name[: -len(word) - 1].strip(), True
    if not name:
        raise UserError("请写上要认领的客户名称。", example=CLAIM_EXAMPLE)
    if len(name) > 100:
        raise UserError("客户名称太长了（最多 100 字）。", example=CLAIM_EXAMPLE)
    norm = normalise_company_name(name)
    if not norm:
        raise UserError(f"「{name}」看起来不是一个客户名称。", example=CLAIM_EXAMPLE)
    me = store.actor
    existing = await store.customer_by_norm(norm) or await store.org_customer_by_norm(norm)
    if existing is not None:
        refusal = await _refusal_for_existing(store, existing, me, now)
        if refusal is not None:
            return refusal
    elif not confirmed:
        # Look-alikes anywhere in the organisation: the same company under another spelling in another team
        # is the costliest 撞单.
        near = find_near_matches(norm, [(cid, n) for cid, n, _ in await store.org_customer_names()], limit=3)
        if near:
            return await _ask_confirmation(store, name, [cid for cid, _ in near])
    await _check_pool_rules(store, me, existing, now)
    result = await store.claim_customer(name, norm, now)
    customer = result.customer
    if result.outcome in ("created", "from_pool"):
        stage = stage_summary(await store.open_deals(customer))
        done = "认领成功" if result.outcome == "created" else "已从公海领回"
        return Reply(f"✅ {done}：{customer.name}\n负责人：{who(me)} · 阶段：{stage}", names=names_of(me))
    refusal = await _refusal_for_existing(store, customer, me, now)
    assert refusal is not None
    return refusal


async def _refusal_for_existing(store: Store, customer: Customer, me: Member, now: datetime) -> Reply | None:
    if customer.owner_id == me.id:
        state = deal_state(await store.deals_of(customer))
        if state in ("won", "lost"):
            return Reply(
                f"「{customer.name}」是你的客户，最近的商机{DEAL_STATUS_NAMES[state]}。"
                f"复购或二期请开一个新商机：商机 {customer.name} <名称>"
            )
        return Reply(f"「{customer.name}」已经是你的客户了（{fmt_day(store, customer.claimed_at)} 认领）。")
    owner = await store.owner_of(customer)
    other_team = await store.team_of(customer) if customer.team_id != store.team.id else None
    if owner is not None:
        # Of another team's customer only the owner, their team and the claim date are told.
        team = f"（{other_team.name}）" if other_team else ""
        return Reply(
            f"⛔ 撞单提醒：「{customer.name}」已由 {who(owner)}{team} 于 {fmt_day(store, customer.claimed_at)} 认领，"
            "不能重复认领。\n"
            f"如需一起跟进，请联系 {owner.name} 发送：协作 {customer.name} @{me.name}",
            names=names_of(owner),
        )
    if other_team is not None and not customer.company_pool:
        return Reply(
            f"「{customer.name}」在「{other_team.name}」的公海里，只能由该组认领。"
            f"如需接手，请该组主管发送：公海 共享 {customer.name}（放到公司公海，各组都能认领）"
        )
    return None


async def _ask_confirmation(store: Store, name: str, customer_ids: list[int]) -> Reply:
    lines = []
    for cid in customer_ids:
        customer = await store.org_customer_by_id(cid)
        if customer is None:
            continue
        owner = await store.owner_of(customer)
        team = f"（{(await store.team_of(customer)).name}）" if customer.team_id != store.team.id else ""
        state = f"负责人 {owner.name}{team}，{fmt_day(store, customer.claimed_at)} 认领" if owner else f"在{team}公海"
        lines.append(f"· {customer.name}（{state}）")
    listing = "\n".join(lines)
    return Reply(
        f"⚠️ 发现名称相似的客户，可能是同一家：\n{listing}\n"
        f"如果确认是不同的客户，请发送：认领 {name} 确认",
    )


async def _check_pool_rules(store: Store, me: Member, existing: Customer | None, now: datetime) -> None:
    team = store.team
    active = await store.count_active_owned(me)
    if active >= team.max_active_customers:
        raise UserError(
            f"认领失败：你跟进中的客户已有 {active} 个，"
            f"达到本组上限 {team.max_active_customers} 个（规则：客户数上限）。"
            "释放或结束一些客户后即可再认领，发送「我的」查看。"
        )
    if team.daily_claim_limit:
        start = local_day_start(store, now)
        today_count = await store.count_claims_since(me, start)
        if today_count >= team.daily_claim_limit:
            raise UserError(
                f"认领失败：你今天已认领 {today_count} 个客户，"
                f"达到每日上限 {team.daily_claim_limit} 个（规则：每日认领上限）。"
                "明天 0 点后可以继续认领。"
            )
    if (
        existing is not None
        and existing.owner_id is None
        and existing.released_by_id == me.id
        and existing.released_at is not None
        and team.cooldown_days > 0
    ):
        clears = existing.released_at + timedelta(days=team.cooldown_days)
        if now < clears:
            raise UserError(
                f"认领失败：「{existing.name}」是你在 {fmt_day(store, existing.released_at)} 释放/掉入公海的客户，"
                f"冷却期 {team.cooldown_days} 天（规则：回收冷却期），{fmt_day(store, clears)} 之后才能再次认领。"
            )


RELEASE_EXAMPLE = "释放 华为"


@commands.command(
    "释放",
    "/release",
    summary="把客户放回公海",
    usage="释放 <客户>",
    example=RELEASE_EXAMPLE,
    details="负责人或主管可以把客户放回公海，其他同事即可认领。原负责人需过冷却期才能再次认领。",
)
async def release(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    customer = await resolve_customer(store, args.text, example=RELEASE_EXAMPLE)
    if customer.owner_id is None:
        raise UserError(f"「{customer.name}」已经在公海里了。")
    if not can_manage(store, customer):
        raise UserError(f"只有负责人或主管可以释放「{customer.name}」。")
    await store.release_customer(customer, now)
    return Reply(f"♻️ 「{customer.name}」已放回公海，同事可以发送「认领 {customer.name}」领走。")


TRANSFER_EXAMPLE = "转交 华为 @李四"


@commands.command(
    "转交",
    "/transfer",
    summary="把客户转给同事",
    usage="转交 <客户> @成员",
    example=TRANSFER_EXAMPLE,
    details="负责人或主管可以把客户转交给本组的另一位同事，协作人保留。",
    takes_mentions=True,
)
async def transfer(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    if len(args.mentions) != 1:
        raise UserError("请 @ 一位接手的同事。", example=TRANSFER_EXAMPLE)
    target = args.mentions[0]
    customer = await resolve_customer(store, args.text, example=TRANSFER_EXAMPLE)
    if not can_manage(store, customer):
        raise UserError(f"只有负责人或主管可以转交「{customer.name}」。")
    if customer.owner_id == target.id:
        raise UserError(f"「{customer.name}」已经由 {target.name} 负责了。")
    await store.ensure_membership(store.team, target, now)
    previous = await store.owner_of(customer)
    await store.transfer_customer(customer, target, now)
    return Reply(
        f"🔁 「{customer.name}」已从 {who(previous)} 转交给 {who(target)}。",
        names=names_of(previous, target),
    )


SHARE_EXAMPLE = "协作 华为 @王五"


@commands.command(
    "协作",
    "/share",
    summary="邀请同事一起跟进客户",
    usage="协作 <客户> @成员",
    example=SHARE_EXAMPLE,
    details="负责人或主管可以添加协作人（也可以是其他组的同事，加入后就能看到这个客户）；协作人可以提交跟进、赢单/输单。",
    takes_mentions=True,
)
async def share(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    if not args.mentions:
        raise UserError("请 @ 要一起跟进的同事。", example=SHARE_EXAMPLE)
    customer = await resolve_customer(store, args.text, example=SHARE_EXAMPLE)
    if customer.owner_id is None:
        raise UserError(f"「{customer.name}」在公海里，请先认领。")
    if not can_manage(store, customer):
        raise UserError(f"只有负责人或主管可以为「{customer.name}」添加协作人。")
    added: list[Member] = []
    for member in args.mentions:
        if member.id == customer.owner_id:
            continue
        if not await store.member_in_a_team(member):  # a collaborator from another team stays in theirs
            await store.ensure_membership(store.team, member, now)
        if await store.add_collaborator(customer, member, now):
            added.append(member)
    if not added:
        raise UserError("这些同事已经是负责人或协作人了。")
    people = "、".join(who(m) for m in added)
    return Reply(f"🤝 {people} 已加入「{customer.name}」的协作，可以提交跟进了。", names=names_of(*added))


CUSTOMER_EXAMPLE = "客户 华为"


@commands.command(
    "客户",
    "/customer",
    summary="查看客户详情和最近跟进",
    usage="客户 <客户>",
    example=CUSTOMER_EXAMPLE,
)
async def customer_card(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    """负责人、协作人、商机（阶段、金额、状态）、下次跟进、联系人和最近 10 条记录。"""
    customer = await resolve_customer(store, args.text, example=CUSTOMER_EXAMPLE)
    detail = await store.customer_detail(customer, limit=10)
    today = local_today(store, now)
    collaborators = "、".join(m.name for m in detail.collaborators) or "—"
    next_on = format_date(customer.next_followup_on, today) if customer.next_followup_on else "—"
    owner = detail.owner.name if detail.owner else "公海"
    lines = [f"📇 **{customer.name}**", f"负责人：{owner} · 协作：{collaborators}"]
    if len(detail.deals) == 1:
        deal = detail.deals[0]
        expected = f" · 预计：{format_date(deal.expected_close_on, today)}" if deal.expected_close_on else ""
        lines.append(
            f"阶段：{deal.stage} · 状态：{DEAL_STATUS_NAMES[deal.status]}"
            f" · 金额：{format_amount(yuan(deal.amount_fen))}{expected}"
        )
    elif detail.deals:
        lines.append(f"商机（{len(detail.deals)}）：")
        for deal in detail.deals:
            expected = f" · 预计 {format_date(deal.expected_close_on, today)}" if deal.expected_close_on else ""
            closed = f" · {fmt_day(store, deal.closed_at)}" if deal.closed_at else ""
            lines.append(f"· {deal_line(deal, with_status=True)}{expected}{closed}")
    else:
        lines.append(f"还没有商机。发送：商机 {customer.name} <名称>")
    lines.append(f"下次跟进：{next_on} · 最近动态：{days_ago_text(now, customer.last_activity_at)}")
    names = {d.id: d.name for d in detail.deals} if len(detail.deals) > 1 else {}
    people = (await contacts_of(store, [customer]))[customer.id]
    if people:
        lines.append("联系人：" + "；".join(contact_line(c) for c in people))
    if detail.followups:
        lines.append("最近跟进：")
        for record, author in detail.followups:
            stage = f"【{record.stage_before}→{record.stage_after}】" if record.stage_after else ""
            deal_name = f"[{names[record.deal_id]}]" if record.deal_id in names else ""
            lines.append(f"· {fmt_day(store, record.created_at)} {author.name}：{deal_name}{stage}{record.content}")
    else:
        lines.append("还没有跟进记录。发送：跟进 " + customer.name + " 已电话沟通 阶段:初访")
    return Reply("\n".join(lines))


@commands.command("我的", "/mine", summary="我跟进中的客户", usage="我的", example="我的",
                  reads_first=lambda text: ("mine",))
async def mine(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    """按下次跟进日期排列你负责的客户，以及你参与协作的客户。"""
    me = store.actor
    today = local_today(store, now)
    owned, shared, deals = await store.my_customers(me)
    duplicates = await duplicate_lines(store) if store.role in ("lead", "admin") else []
    if not owned and not shared:
        empty = "你还没有跟进中的客户。发送「认领 客户名」开始，或发送「公海」看看有哪些待认领的客户。"
        return Reply("\n".join([empty, *duplicates]))
    lines = [f"📋 {me.name} 跟进中的客户（{len(owned)}/{store.team.max_active_customers}）："]
    for i, c in enumerate(owned, 1):
        lines.append(f"{i}. {_customer_line(c, deals.get(c.id, []), today)}")
    if shared:
        lines.append("协作中：")
        for c in shared:
            lines.append(f"· {_customer_line(c, deals.get(c.id, []), today)}")
    return Reply("\n".join([*lines, *duplicates]))


@commands.command(
    "公海",
    "/pool",
    summary="公海里待认领的客户",
    usage="公海 | 公海 共享 <客户>",
    example="公海",
    details=(
        "列出本组公海和公司公海里待认领的客户。\n"
        "主管可以把本组的客户放到公司公海：公海 共享 <客户>，公司里任何一个组都能认领。"
    ),
)
async def pool(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    word, _, rest = args.text.partition(" ")
    if word == "共享":
        return await share_to_company_pool(store, rest.strip(), now)
    customers, total = await store.pool_customers(limit=30)
    if not customers:
        return Reply("公海里暂时没有客户。")
    lines = [f"🌊 公海客户（共 {total} 个）："]
    open_deals = await store.open_deals_by_customer([c.id for c in customers])
    for c in customers:
        released = f" · {fmt_day(store, c.released_at)} 回到公海" if c.released_at else ""
        if c.team_id != store.team.id:  # another team's, shared: its deals stay that team's business
            lines.append(f"· {c.name} · 公司公海{released}")
            continue
        stage = stage_summary(open_deals[c.id]) if c.id in open_deals else "商机已结束"
        shared = " · 公司公海" if c.company_pool else ""
        lines.append(f"· {c.name} · {stage}{shared}{released}")
    if total > len(customers):
        lines.append(f"……只显示前 {len(customers)} 个")
    lines.append("发送「认领 客户名」领走。")
    return Reply("\n".join(lines))


def _customer_line(c: Customer, deals: list[Deal], today: date) -> str:
    next_on = f" · 下次 {format_date(c.next_followup_on, today)}" if c.next_followup_on else ""
    overdue = " ⏰" if c.next_followup_on and c.next_followup_on < today else ""
    return f"{c.name} · {stage_summary(deals)}{next_on}{overdue}"
