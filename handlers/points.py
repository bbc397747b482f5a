"""Collaboration points (协作积分): the ledger rules and the leaderboard 排行.

Points reward helping teammates, and they are a ledger rather than a counter so that every point can
be traced to a help request or a deal, and undone exactly:

· 接下求助 +1 (the taker), 以接单人身份解决 +3 (the helper), 赢单时每位协作人 +5.
· 重开 #N reverses the +3 of the resolution; the +1 for taking stays, because the helper did take the
  request and is still on it — resolving it again earns the +3 again.
· 撤销赢单 <客户> reverses the +5 of every collaborator of that deal; winning it again awards anew.

Admins change the values per team with 设置 积分 <接单|解决|协作赢单> <分数> (0 switches a rule off);
they are kept in the team's settings JSON under "points".
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.messages import IncomingMessage, Reply
from handlers.amounts import format_amount
from handlers.commands import Args, CommandSet, SettingSet, UserError
from handlers.common import local_today, yuan
from storage import points as ledger
from storage.goals import local_bounds
from storage.ledger import period_wins
from storage.models import Customer, HelpRequest, Member
from storage.store import Store

commands = CommandSet("协作")
settings = SettingSet()

# Rule key → (Chinese name used in 设置 积分, default points, ledger reason).
RULES: dict[str, tuple[str, int]] = {
    "take": ("接单", 1),
    "resolve": ("解决", 3),
    "won": ("协作赢单", 5),
}
RULE_BY_NAME = {name: key for key, (name, _) in RULES.items()} | {"赢单": "won", "接": "take"}
REASON_TEXT = {
    "take": "接下求助",
    "resolve": "解决求助",
    "won": "协作赢单",
    "reopen": "求助重开",
    "won_revert": "撤销赢单",
}
RANK_EXAMPLE = "排行 本月"
SALES_RANK_EXAMPLE = "排行 业绩 本月"


def rule_points(store: Store, key: str) -> int:
    configured = (store.team.settings or {}).get("points") or {}
    value = configured.get(key)
    return int(value) if isinstance(value, int) else RULES[key][1]


# ------------------------------------------------------------------ hooks
# Called by the handlers whose action causes the points, inside the same transaction.
async def on_help_taken(store: Store, request: HelpRequest, helper: Member, now: datetime) -> int:
    points = rule_points(store, "take")
    await ledger.award(store, helper, points, "take", now, help_request=request)
    return points


async def on_help_resolved(store: Store, request: HelpRequest, helper: Member | None, now: datetime) -> int:
    """+3 to the helper; nothing when nobody took the request or the requester closes their own."""
    if helper is None or helper.id == request.requester_id:
        return 0
    points = rule_points(store, "resolve")
    await ledger.award(store, helper, points, "resolve", now, help_request=request)
    return points


async def on_help_reopened(store: Store, request: HelpRequest, now: datetime) -> list[tuple[Member, int]]:
    return await ledger.reverse(store, "resolve", "reopen", now, help_request=request)


async def on_deal_won(store: Store, customer: Customer, collaborators: list[Member], now: datetime) -> int:
    points = rule_points(store, "won")
    for member in collaborators:
        if member.id != customer.owner_id:
            await ledger.award(store, member, points, "won", now, customer=customer)
    return points


async def on_deal_reverted(store: Store, customer: Customer, now: datetime) -> list[tuple[Member, int]]:
    return await ledger.reverse(store, "won", "won_revert", now, customer=customer)


def points_text(points: int) -> str:
    return f"+{points}" if points > 0 else str(points)


# --------------------------------------------------------------- settings
def _describe(store: Store) -> str:
    return "协作积分：" + "，".join(f"{name} {rule_points(store, key)}" for key, (name, _) in RULES.items())


@settings.row(
    "积分", role="admin", usage="设置 积分 解决 3（可设：接单、解决、协作赢单；0 为不计分）", describe=_describe
)
async def _set_points(args: Args, value: str, store: Store, now: datetime) -> str:
    example = "设置 积分 解决 3"
    name, _, number = value.partition(" ")
    key = RULE_BY_NAME.get(name.strip())
    if key is None:
        choices = "、".join(n for n, _ in RULES.values())
        raise UserError(f"没有「{name}」这项积分规则。可设：{choices}。", example=example)
    number = number.strip()
    if not number.lstrip("-").isdigit() or not 0 <= int(number) <= 100:
        raise UserError("积分要写 0 到 100 之间的整数。", example=example)
    current = dict((store.team.settings or {}).get("points") or {})
    current[key] = int(number)
    await store.update_team_settings({"points": current}, now)
    return f"「{RULES[key][0]}」积分已设为 {int(number)} 分（只影响以后的记录）。"


# -------------------------------------------------------------- command
def period_bounds(store: Store, now: datetime, period: str) -> tuple[datetime, datetime, str]:
    today = local_today(store, now)
    if period == "本月":
        first = today.replace(day=1)
        nxt = (first + timedelta(days=32)).replace(day=1)
        start, end = local_bounds(store, first, nxt)
        return start, end, f"{first:%m}月"
    monday = today - timedelta(days=today.weekday())
    start, end = local_bounds(store, monday, monday + timedelta(days=7))
    return start, end, "本周"


@commands.command(
    "排行",
    "/rank",
    summary="协作积分排行，或业绩排行（排行 业绩）",
    usage="排行 [业绩] [本周|本月]",
    example=RANK_EXAMPLE,
    extra_words=("积分排行",),
    details=(
        "协作积分：接下求助 +1，以接单人身份解决 +3，赢单时每位协作人 +5（管理员可用「设置 积分」调整）。\n"
        "求助被重开会扣回解决的积分（接单分保留）；撤销赢单会扣回协作人的积分。默认看本周。\n"
        "排行 业绩 [本周|本月]：按赢单业绩（分成后的金额，撤销赢单会扣回）排名，英文 /rank sales。"
    ),
)
async def rank(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    words = args.text.split()
    sales = bool(words) and words[0].lower() in ("业绩", "sales")
    period = " ".join(words[1:] if sales else words) or "本周"
    if period in ("周", "这周", "week"):
        period = "本周"
    if period in ("月", "这个月", "month"):
        period = "本月"
    if period not in ("本周", "本月"):
        raise UserError("排行可以看本周或本月。", example=SALES_RANK_EXAMPLE if sales else RANK_EXAMPLE)
    start, end, label = period_bounds(store, now, period)
    if sales:
        return await _sales_rank(store, start, end, label)
    board = await ledger.leaderboard(store, start, end, limit=10)
    if not board:
        return Reply(f"🏆 {label}协作积分排行\n还没有人得分。接下同事的求助（接 #编号）就能得分！")
    medals = ["🥇", "🥈", "🥉"]
    lines = [f"🏆 {label}协作积分排行"]
    for i, (member, points) in enumerate(board):
        mark = medals[i] if i < 3 else f"{i + 1}."
        lines.append(f"{mark} {member.name} {points} 分")
    mine = next((p for m, p in board if m.id == store.actor.id), None)
    if mine is None:
        lines.append("你本期还没有积分，去「求助列表」看看谁需要帮忙吧。")
    return Reply("\n".join(lines))


async def _sales_rank(store: Store, start: datetime, end: datetime, label: str) -> Reply:
    """Members by credited won amount in the period (业绩分成 counted, un-wins subtracted)."""
    wins = await period_wins(store, start, end)
    credited = [(mid, c) for mid, c in wins.by_member.items() if c.fen or c.count]
    members = await store.members_by_id([mid for mid, _ in credited])
    credited.sort(key=lambda p: (-p[1].fen, p[0]))
    title = f"💰 {label}业绩排行（按分成后的赢单金额）"
    if not credited:
        return Reply(f"{title}\n还没有赢单。")
    medals = ["🥇", "🥈", "🥉"]
    lines = [title]
    for i, (mid, credit) in enumerate(credited[:10]):
        mark = medals[i] if i < 3 else f"{i + 1}."
        name = members[mid].name if mid in members else f"#{mid}"
        wins_text = f" · 赢单 {credit.count} 个" if credit.count else ""
        lines.append(f"{mark} {name} {format_amount(yuan(credit.fen))}{wins_text}")
    lines.append(f"团队合计 {format_amount(yuan(wins.fen))} · 赢单 {wins.count} 个")
    return Reply("\n".join(lines))
