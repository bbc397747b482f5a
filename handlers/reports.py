"""What the scheduled pushes say: plain functions from numbers to neutral messages.

No clock, no database: every builder takes what it shows, so its wording is tested with literal
numbers. Text is light markdown that reads well on a phone (short lines, one fact per line) with
`<@user_id>` markers where someone should be notified. All Chinese wording of the pushes sits here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from bot.messages import OutgoingMessage, mention
from handlers.amounts import format_amount
from handlers.common import yuan_text
from handlers.dates import weekday_name
from handlers.manager_reports import (
    ManagerView,
    deal_sections,
    participation_text,
    people_sections,
    won_lines,
)
from storage.reports import DigestNumbers, WeekNumbers

STAGE_ORDER = ("线索", "初访", "需求确认", "报价", "谈判", "赢单", "输单")


class Person(Protocol):
    user_id: str
    name: str


@dataclass
class PromptEntry:
    person: Person
    due: list[str] = field(default_factory=list)  # customers to follow up today
    overdue: int = 0
    helping: list[str] = field(default_factory=list)  # "#3 报价模板（待接）"


@dataclass
class StandupLine:
    person: Person
    plan: str
    blockers: str | None


@dataclass
class GoalProgress:
    """One goal's progress this month; wired in by the goals area (empty list → section omitted)."""

    label: str
    done: Decimal | int
    target: Decimal | int
    unit: str = ""  # "元" shows money with format_amount


def _day(d: date) -> str:
    return f"{d.month}月{d.day}日 {weekday_name(d)}"


def progress_bar(done: float, target: float, width: int = 10) -> str:
    """`▓▓▓▓░░░░░░ 40%` — a text bar every chat client can show."""
    ratio = 0.0 if target <= 0 else max(done / target, 0.0)
    filled = min(int(round(ratio * width)), width)
    return "▓" * filled + "░" * (width - filled) + f" {int(round(ratio * 100))}%"


def _names(people: dict[str, str], *persons: Person | None) -> dict[str, str]:
    for p in persons:
        if p is not None:
            people[p.user_id] = p.name
    return people


# ------------------------------------------------------------------ stand-up
def standup_prompt(
    team: str, day: date, entries: Sequence[PromptEntry], on_leave: Sequence[Person] = ()
) -> OutgoingMessage:
    lines = [f"☀️ 早上好，{team}！今天是{_day(day)}，晨会开始～", ""]
    for entry in entries:
        parts = []
        if entry.due:
            shown = "、".join(entry.due[:5]) + (f" 等{len(entry.due)}个" if len(entry.due) > 5 else "")
            parts.append(f"今日跟进：{shown}")
        if entry.overdue:
            parts.append(f"逾期 {entry.overdue} 个")
        if entry.helping:
            parts.append("求助：" + "；".join(entry.helping))
        lines.append(f"· {entry.person.name}：" + ("；".join(parts) if parts else "今天没有到期的跟进"))
    if on_leave:
        lines.append(f"🏖 请假：{'、'.join(p.name for p in on_leave)}")
    lines += ["", "请回复「晨会 今天的计划 阻碍:遇到的困难」（/standup），当天再发一次会覆盖。"]
    return OutgoingMessage("\n".join(lines), title="晨会")


def standup_summary(
    team: str,
    day: date,
    answered: Sequence[StandupLine],
    missing: Sequence[Person],
    on_leave: Sequence[Person],
    *,
    mention_missing: bool,
) -> OutgoingMessage:
    names: dict[str, str] = {}
    total = len(answered) + len(missing)
    lines = [f"📋 {team} 晨会总结 · {_day(day)}", f"已回复 {len(answered)}/{total} 人", ""]
    for line in answered:
        lines.append(f"✅ {line.person.name}：{line.plan}")
    blockers = [a for a in answered if a.blockers]
    if blockers:
        lines += ["", "🚧 **需要支持的阻碍：**"]
        lines += [f"· {a.person.name}：{a.blockers}" for a in blockers]
    if missing:
        if mention_missing:
            who = " ".join(mention(p.user_id) for p in missing)
            _names(names, *missing)
        else:
            who = "、".join(p.name for p in missing)
        lines += ["", f"⏳ 未回复：{who}"]
    if on_leave:
        lines.append(f"🏖 请假：{'、'.join(p.name for p in on_leave)}")
    if not answered and not missing:
        lines.append("今天没有需要参加晨会的成员。")
    return OutgoingMessage("\n".join(lines), title="晨会总结", names=names)


# ----------------------------------------------------------------- reminders
def followup_reminders(day: date, per_owner: Sequence[tuple[Person, Sequence[str]]]) -> OutgoingMessage:
    names: dict[str, str] = {}
    lines = [f"📌 今日（{_day(day)}）待跟进客户："]
    for owner, customers in per_owner:
        _names(names, owner)
        lines.append(f"{mention(owner.user_id)}：{'、'.join(customers)}")
    lines.append("跟进后发送「跟进 客户 内容 下次:日期」记录进展。")
    return OutgoingMessage("\n".join(lines), title="跟进提醒", names=names)


# ---------------------------------------------------------------------- pool
def pool_warning(days: int, warn_days: int, per_owner: Sequence[tuple[Person, Sequence[str]]]) -> OutgoingMessage:
    names: dict[str, str] = {}
    lines = [f"⚠️ 公海预警：以下客户已近 {days - warn_days} 天没有跟进，{warn_days} 天内仍无跟进将退回公海："]
    for owner, customers in per_owner:
        _names(names, owner)
        lines.append(f"{mention(owner.user_id)}：{'、'.join(customers)}")
    lines.append("发送「跟进 客户 内容」即可保留。")
    return OutgoingMessage("\n".join(lines), title="公海预警", names=names)


def pool_reclaimed(days: int, per_owner: Sequence[tuple[Person, Sequence[str]]]) -> OutgoingMessage:
    names: dict[str, str] = {}
    total = sum(len(c) for _, c in per_owner)
    lines = [f"🌊 {total} 个客户超过 {days} 天没有跟进，已退回公海："]
    for owner, customers in per_owner:
        _names(names, owner)
        lines.append(f"· 原负责人 {mention(owner.user_id)}：{'、'.join(customers)}")
    lines.append("大家可以发送「公海」查看，「认领 客户名」认领。")
    return OutgoingMessage("\n".join(lines), title="公海回收", names=names)


# ---------------------------------------------------------------- escalation
def help_escalation(
    number: int, content: str, requester: Person, leads: Sequence[Person], hours: float
) -> OutgoingMessage:
    names = _names({}, requester, *leads)
    to = " ".join(mention(p.user_id) for p in leads) or "主管"
    text = (
        f"🔺 求助 #{number} 已超过 {hours:g} 个工作小时无人接：{content}\n"
        f"求助人：{requester.name}\n{to} 请协调同事支援，或直接回复「接 #{number}」。"
    )
    return OutgoingMessage(text, title="求助升级", names=names)


# -------------------------------------------------------------------- digest
def manager_digest(
    team: str,
    day: date,
    numbers: DigestNumbers,
    now: datetime,
    *,
    pool_days: int,
    goals: Sequence[GoalProgress] = (),
    view: ManagerView | None = None,
) -> OutgoingMessage:
    """The lead's evening read: the day's activity per rep, then the shared sections (wins and losses
    named, the pipeline against Monday, the month's forecast, overdue next steps, idle reps, moves,
    waiting help), the stand-up participation, the pool and the goals."""
    view = view or ManagerView(names={})
    view.names = {**{i: m.name for i, m in numbers.members.items()}, **view.names}
    name = view.name

    lines = [f"📊 **{team} 日报 · {_day(day)}**"]
    total_claims = sum(r.claims for r in numbers.reps.values())
    total_followups = sum(r.followups for r in numbers.reps.values())
    lines.append(f"认领 {total_claims} · 跟进 {total_followups} · 赢单 {view.won_count}")
    lines += ["", "**👥 成员动态**"]
    if numbers.reps:
        for member_id, rep in sorted(numbers.reps.items(), key=lambda p: (-(p[1].claims + p[1].followups), name(p[0]))):
            lines.append(f"· {name(member_id)}：认领 {rep.claims}，跟进 {rep.followups}")
            for customer, before, after in rep.stage_changes:
                lines.append(f"  {customer}：{before or '—'} → {after}")
    else:
        lines.append("今天没有认领和跟进记录。")
    if view.won_count or view.wins:
        lines += ["", *won_lines(view)]
    lines += deal_sections(view) + people_sections(view)
    if view.participation is not None:
        lines += ["", participation_text(view.participation)]
    if numbers.pool_soon:
        lines += ["", f"**⚠️ 3 天内将退回公海 {len(numbers.pool_soon)} 个**"]
        for p in numbers.pool_soon:
            idle = (now - p.last_activity_at).days
            lines.append(f"· {p.customer}（{name(p.owner_id)}，{idle} 天未跟进，还剩 {max(pool_days - idle, 0)} 天）")
    if goals:
        lines += ["", "**🎯 本月目标**"]
        for g in goals:
            if g.unit == "元":
                shown = f"{format_amount(Decimal(g.done))}/{format_amount(Decimal(g.target))}"
            else:
                shown = f"{g.done}/{g.target}{g.unit}"
            lines.append(f"· {g.label} {progress_bar(float(g.done), float(g.target))} {shown}")
    return OutgoingMessage("\n".join(lines), title=f"{team} 日报")


# --------------------------------------------------------------------- retro
def _delta(this: float, last: float, fmt: str = "{:+g}") -> str:
    diff = this - last
    if diff == 0:
        return "（持平）"
    return "（较上周 " + ("↑" if diff > 0 else "↓") + fmt.format(abs(diff)).lstrip("+") + "）"


def weekly_retro(
    team: str,
    week_start: date,
    this: WeekNumbers,
    last: WeekNumbers,
    participation: float | None,
    participation_last: float | None,
    view: ManagerView,
) -> OutgoingMessage:
    name = view.name
    end = date.fromordinal(week_start.toordinal() + 6)
    lines = [f"📈 **{team} 周复盘 · {week_start.month}月{week_start.day}日–{end.month}月{end.day}日**", ""]
    lines.append(f"🎉 赢单 {this.won_count} 个{_delta(this.won_count, last.won_count)}，金额 {yuan_text(this.won_fen)}"
                 + ("" if this.won_fen == last.won_fen else f"（上周 {yuan_text(last.won_fen)}）"))
    if this.unwon_count:
        lines.append(f"↩️ 其中撤销往期赢单 {this.unwon_count} 个，{yuan_text(this.unwon_fen)}，已从本周扣除")
    lines += won_lines(view)[1:]
    lines.append(f"🆕 新客户 {this.new_customers} 个{_delta(this.new_customers, last.new_customers)}")
    lines.append(f"📝 跟进 {this.followups} 次{_delta(this.followups, last.followups)}")
    if this.stage_moves:
        moved = "，".join(f"{s} {this.stage_moves[s]}" for s in STAGE_ORDER if s in this.stage_moves)
        lines.append(f"🔀 阶段推进：{moved}")
    lines += deal_sections(view)
    if this.followups_by_rep:
        lines += ["", "**每人跟进**"]
        for member_id, count in sorted(this.followups_by_rep.items(), key=lambda p: (-p[1], name(p[0]))):
            before = last.followups_by_rep.get(member_id, 0)
            lines.append(f"· {name(member_id)}：{count} 次{_delta(count, before)}")
    lines += ["", "**🤝 协作**"]
    median = "—" if this.median_take_hours is None else f"{this.median_take_hours:.1f} 小时"
    lines.append(
        f"求助 发起 {this.help_raised} · 被接 {this.help_taken} · 解决 {this.help_resolved}；接单中位用时 {median}"
    )
    if this.top_helpers:
        stars = "、".join(f"{name(m)}（{c} 分）" for m, c in this.top_helpers)
        lines.append(f"⭐ 协作之星：{stars}")
    lines.append(participation_text(participation, participation_last))
    lines += ["", "**🧊 风险**"]
    idle = ""
    if this.went_idle:
        more = " 等" if this.went_idle_count > len(this.went_idle) else ""
        idle = f"：{'、'.join(this.went_idle)}{more}"
    lines.append(f"本周变为沉默（14 天无跟进）的客户 {this.went_idle_count} 个{idle}")
    lines += people_sections(view)
    return OutgoingMessage("\n".join(lines), title=f"{team} 周复盘")
