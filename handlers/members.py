"""The team's people: 成员 lists them, 移除 takes someone out of the team.

Removing keeps nobody's customers orphaned: they go to the team's lead, or to its pool when it has
none — the rule 离职继承 uses (storage/offboarding.py). A removed member's rows stay (their follow-ups
keep their author), but they drop out of stand-ups, escalations and 成员, and what they send in the
group is no longer run; an admin takes them back with `设置 成员 @名字`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.messages import IncomingMessage, Reply
from handlers.commands import ROLE_NAMES, Args, CommandSet, UserError
from handlers.common import local_today, names_of, who
from storage.offboarding import remove_from_team
from storage.schedule_store import ScheduleStore
from storage.store import Store

commands = CommandSet("管理")

REMOVE_EXAMPLE = "移除 @李四"


@commands.command("成员", "/members", summary="查看本组成员", usage="成员", example="成员")
async def members(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    """列出本组成员：身份、跟进中的客户数，今天是否请假。"""
    ss = ScheduleStore(store)
    today = local_today(store, now)
    team = await ss.active_members()
    away = {leave.member_id for leave in await ss.leaves_between(today, today + timedelta(days=1))}
    lines = [f"👥 「{store.team.name}」共 {len(team)} 人："]
    for row in team:
        role = "管理员" if store.is_admin(row.member) else ROLE_NAMES["lead" if row.role == "lead" else "rep"]
        count = await store.count_active_owned(row.member)
        leave = " · 🏖 请假中" if row.member.id in away else ""
        lines.append(f"· {row.member.name}（{role}）跟进中 {count} 个客户{leave}")
    return Reply("\n".join(lines))


@commands.command(
    "移除",
    "/remove",
    summary="把成员移出本组",
    usage="移除 @成员",
    example=REMOVE_EXAMPLE,
    role="lead",
    takes_mentions=True,
    details="主管或管理员把成员移出本组：他的客户转给本组主管（没有主管时回到公海），之后不再参加晨会和提醒。",
)
async def remove(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    if len(args.mentions) != 1:
        raise UserError("请 @ 一位要移出本组的成员。", example=REMOVE_EXAMPLE)
    [member] = args.mentions
    if member.id == store.actor.id:
        raise UserError("不能把自己移出本组。需要时请管理员来操作。")
    membership = await store.team_membership(member)
    if membership is None or membership.left_at is not None:
        raise UserError(f"「{member.name}」不在「{store.team.name}」里。发送「成员」查看本组成员。")
    if store.is_admin(member):
        raise UserError(f"「{member.name}」是管理员，不能移出本组。")
    if membership.role == "lead" and store.role != "admin":
        raise UserError(f"「{member.name}」是主管，只有管理员可以把主管移出本组。")
    handover = await remove_from_team(store, member, now)
    assert handover is not None  # the membership was checked above, in this transaction
    lines = [f"👋 已将 {member.name} 移出「{store.team.name}」，之后不再参加晨会、提醒和求助升级。"]
    if handover.customers:
        names = "、".join(c.name for c in handover.customers[:10])
        more = f" 等 {len(handover.customers)} 个" if len(handover.customers) > 10 else ""
        where = f"已转给主管 {who(handover.heir)}" if handover.heir else "本组没有主管，已回到公海"
        lines.append(f"他负责的客户（{names}{more}）{where}。")
    else:
        lines.append("他名下没有客户。")
    return Reply("\n".join(lines), names=names_of(member, handover.heir))
