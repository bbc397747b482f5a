"""What managers read in the digest and the retros, section by section: plain functions from numbers
to short lines.

Each section is a list of lines a phone shows without wrapping much: one fact per line, a name list
cut short with "等", no markdown tables (DingTalk renders none) and no line starting with # - * |.
The numbers come in ready (won, lost and pipeline from storage.ledger, the forecast from
storage.forecast, the rest from storage.manager_numbers); nothing here reads a clock or a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from bot.messages import OutgoingMessage
from handlers.common import OPEN_STAGES, yuan_text
from handlers.deal_choice import FIRST_DEAL
from storage.forecast import Forecast
from storage.manager_numbers import MOVE_ACTIONS, OwnerMove, WaitingHelp

NAMES_SHOWN = 3
LINES_SHOWN = 8


def arrow(diff: int) -> str:
    return "" if diff == 0 else ("↑" if diff > 0 else "↓") + str(abs(diff))


def fen_arrow(diff: int) -> str:
    return "" if diff == 0 else ("↑" if diff > 0 else "↓") + yuan_text(abs(diff))


def few(names: Sequence[str], shown: int = NAMES_SHOWN) -> str:
    """`甲、乙、丙 等5个` — a list cut to what fits on a line."""
    head = "、".join(names[:shown])
    return head + (f" 等{len(names)}个" if len(names) > shown else "")


@dataclass
class WonLine:
    customer: str
    deal: str
    fen: int
    owner_id: int | None
    shares: list[tuple[int, int]] = field(default_factory=list)  # (member id, basis points) of the credit
    reversal: bool = False  # an un-win of an earlier period's win (fen < 0)


@dataclass
class LostLine:
    customer: str
    deal: str
    fen: int | None
    owner_id: int | None
    reason: str | None


@dataclass
class StageCount:
    count: int = 0
    fen: int = 0


@dataclass
class ManagerView:
    """The sections of one report; a section left None is not shown (e.g. today's overdue steps in a
    past period's retro, which history cannot tell)."""

    names: dict[int, str]
    won_count: int = 0
    won_fen: int = 0
    wins: list[WonLine] = field(default_factory=list)
    losses: list[LostLine] = field(default_factory=list)
    pipeline: dict[str, StageCount] | None = None
    pipeline_before: dict[str, StageCount] | None = None
    change_label: str = "较周初"
    forecast: Forecast | None = None
    overdue: dict[int, list[tuple[str, int]]] | None = None
    idle_reps: list[int] | None = None
    moves: list[OwnerMove] = field(default_factory=list)
    waiting_help: list[WaitingHelp] | None = None
    at: datetime | None = None  # the moment `waiting_help` is about
    participation: float | None = None

    def name(self, member_id: int | None) -> str:
        if member_id is None:
            return "公海"
        return self.names.get(member_id, f"#{member_id}")


def deal_title(customer: str, deal: str) -> str:
    """A claim's first deal reads as the customer alone; 复购, 二期 … are named."""
    return customer if deal in ("", FIRST_DEAL) else f"{customer}·{deal}"


def won_lines(view: ManagerView) -> list[str]:
    lines = [f"🎉 赢单 {view.won_count} 个 · {yuan_text(view.won_fen)}"]
    for win in view.wins[:LINES_SHOWN]:
        split = len(win.shares) > 1
        who = " ".join(f"{view.name(m)} {bp / 100:g}%" for m, bp in win.shares) if split else view.name(win.owner_id)
        title = deal_title(win.customer, win.deal)
        if win.reversal:
            lines.append(f"· ↩️ 撤销往期赢单 {title} {yuan_text(win.fen)} · {who}")
        else:
            lines.append(f"· {title} {yuan_text(win.fen)} · {who}")
    if len(view.wins) > LINES_SHOWN:
        lines.append(f"……共 {len(view.wins)} 单")
    return lines


def lost_lines(view: ManagerView) -> list[str]:
    if not view.losses:
        return []
    total = sum(loss.fen or 0 for loss in view.losses)
    lines = [f"❌ 输单 {len(view.losses)} 个" + (f" · {yuan_text(total)}" if total else "")]
    for loss in view.losses[:LINES_SHOWN]:
        reason = loss.reason or "未填原因"
        amount = f" {yuan_text(loss.fen)}" if loss.fen else ""
        lines.append(f"· {deal_title(loss.customer, loss.deal)}{amount} · {view.name(loss.owner_id)}：{reason}")
    if len(view.losses) > LINES_SHOWN:
        lines.append(f"……共 {len(view.losses)} 单")
    return lines


def pipeline_lines(view: ManagerView) -> list[str]:
    if view.pipeline is None:
        return []
    now, before = view.pipeline, view.pipeline_before or {}
    count = sum(s.count for s in now.values())
    fen = sum(s.fen for s in now.values())
    change = ""
    if view.pipeline_before is not None:
        count_diff = count - sum(s.count for s in before.values())
        fen_diff = fen - sum(s.fen for s in before.values())
        moved = " ".join(x for x in (arrow(count_diff) + ("个" if count_diff else ""), fen_arrow(fen_diff)) if x)
        change = f"（{view.change_label} {moved}）" if moved else f"（{view.change_label} 持平）"
    lines = [f"🗂 商机 {count} 个 · {yuan_text(fen)}{change}"]
    for stage in OPEN_STAGES:
        this, last = now.get(stage, StageCount()), before.get(stage, StageCount())
        if this.count or last.count:
            diff = arrow(this.count - last.count) if view.pipeline_before is not None else ""
            value = f" · {yuan_text(this.fen)}" if this.fen else ""
            lines.append(f"· {stage} {this.count} 个{value}" + (f" {diff}" if diff else ""))
    return lines


def forecast_lines(forecast: Forecast | None) -> list[str]:
    if forecast is None:
        return []
    lines = [f"🔮 {forecast.first.month}月预测 {yuan_text(forecast.weighted_fen)}（按阶段赢率加权）"]
    for stage in OPEN_STAGES:
        row = forecast.by_stage.get(stage)
        if row:
            lines.append(f"· {stage} {row.count} 个 {yuan_text(row.fen)} × {forecast.rates[stage]}%")
    if forecast.undated.count:
        lines.append(f"· 未填预计 {forecast.undated.count} 个 {yuan_text(forecast.undated.fen)}（不计入）")
    if forecast.overdue.count:
        lines.append(f"· 预计已过 {forecast.overdue.count} 个 {yuan_text(forecast.overdue.fen)}（不计入）")
    return lines


def overdue_lines(view: ManagerView) -> list[str]:
    if not view.overdue:
        return []
    total = sum(len(steps) for steps in view.overdue.values())
    lines = [f"⏰ 下一步逾期 {total} 个"]
    for owner, steps in sorted(view.overdue.items(), key=lambda p: (-len(p[1]), view.name(p[0]))):
        shown = [f"{customer} {days}天" for customer, days in steps]
        lines.append(f"· {view.name(owner)} {len(steps)} 个：{few(shown)}")
    return lines


def idle_lines(view: ManagerView) -> list[str]:
    if not view.idle_reps:
        return []
    return [f"💤 没有跟进和新客户：{few([view.name(m) for m in view.idle_reps], 6)}"]


def move_lines(view: ManagerView) -> list[str]:
    if not view.moves:
        return []
    counts: dict[str, int] = {}
    for move in view.moves:
        counts[move.action] = counts.get(move.action, 0) + 1
    lines = ["🔁 " + " · ".join(f"{MOVE_ACTIONS[a]} {counts[a]}" for a in MOVE_ACTIONS if a in counts)]
    for move in view.moves[:LINES_SHOWN]:
        what = "无跟进回收" if move.action == "reclaim" else MOVE_ACTIONS[move.action]
        lines.append(f"· {move.customer} {view.name(move.from_id)} → {view.name(move.to_id)}（{what}）")
    if len(view.moves) > LINES_SHOWN:
        lines.append(f"……共 {len(view.moves)} 次")
    return lines


def help_lines(view: ManagerView) -> list[str]:
    if not view.waiting_help or view.at is None:
        return []
    lines = [f"🆘 超过 24 小时未解决的求助 {len(view.waiting_help)} 个"]
    for h in view.waiting_help[:LINES_SHOWN]:
        hours = int((view.at - h.created_at).total_seconds() // 3600)
        lines.append(f"· #{h.number} {h.content[:20]}（{view.name(h.requester_id)}，{hours} 小时，"
                     f"{'处理中' if h.taken else '待接'}）")
    return lines


def _joined(*blocks: list[str]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if block:
            out += ["", *block]
    return out


def deal_sections(view: ManagerView) -> list[str]:
    """Lost deals, the pipeline and the forecast, each after a blank line (empty ones left out)."""
    return _joined(lost_lines(view), pipeline_lines(view), forecast_lines(view.forecast))


def people_sections(view: ManagerView) -> list[str]:
    """Overdue next steps, idle reps, customers moved, waiting help."""
    return _joined(overdue_lines(view), idle_lines(view), move_lines(view), help_lines(view))


def sections(view: ManagerView) -> list[str]:
    """Every section, the named wins first (they always show)."""
    return _joined(won_lines(view)) + deal_sections(view) + people_sections(view)


def participation_text(rate: float | None, last: float | None = None, last_label: str = "上周") -> str:
    shown = "—" if rate is None else f"{rate * 100:.0f}%"
    was = ""
    if rate is not None and last is not None and rate != last:
        was = f"（{last_label} {last * 100:.0f}%）"
    return f"🗣 晨会参与率：{shown}{was}（不含主管和请假）"


@dataclass
class MonthNumbers:
    """The month's activity besides wins, losses and pipeline (those are in the ManagerView)."""

    new_customers: int = 0
    followups_by_rep: dict[int, int] = field(default_factory=dict)
    new_by_rep: dict[int, int] = field(default_factory=dict)
    help_raised: int = 0
    help_taken: int = 0
    help_resolved: int = 0
    top_helpers: list[tuple[int, int]] = field(default_factory=list)  # (member id, points)
    participation: float | None = None


def monthly_retro(team: str, month: date, view: ManagerView, numbers: MonthNumbers) -> OutgoingMessage:
    """协作复盘 of the month starting on `month`: what was won and lost (named), the pipeline then against the month's
    start, the reps' activity, who helped whom, and the stand-up participation."""
    year, mon = month.year, month.month
    followups = sum(numbers.followups_by_rep.values())
    lines = [f"📅 **{team} {year}年{mon}月 协作复盘**", ""]
    lines.append(f"🆕 新客户 {numbers.new_customers} 个 · 📝 跟进 {followups} 次")
    lines += sections(view)
    reps = set(numbers.followups_by_rep) | set(numbers.new_by_rep)
    if reps:
        lines += ["", "**每人**"]
        for member_id in sorted(reps, key=lambda m: (-numbers.followups_by_rep.get(m, 0), view.name(m))):
            lines.append(f"· {view.name(member_id)}：跟进 {numbers.followups_by_rep.get(member_id, 0)} 次，"
                         f"新客户 {numbers.new_by_rep.get(member_id, 0)} 个")
    lines += ["", "**🤝 协作**"]
    lines.append(f"求助 发起 {numbers.help_raised} · 被接 {numbers.help_taken} · 解决 {numbers.help_resolved}")
    if numbers.top_helpers:
        lines.append("⭐ 协作之星：" + "、".join(f"{view.name(m)}（{p} 分）" for m, p in numbers.top_helpers))
    lines.append(participation_text(numbers.participation))
    return OutgoingMessage("\n".join(lines), title=f"{team} {mon}月协作复盘")
