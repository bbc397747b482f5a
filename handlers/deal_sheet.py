"""`salesbot export deals --month 2026-11`: a month's wins and losses as a sheet a manager can check.

The rows are the ledger's (storage.ledger), the same numbers the digest, the retro and 看板 show for
the month: the wins not undone in it, un-wins of earlier months' wins (negative amounts, said so),
the losses with their reasons, and a last row with the month's net count and amount.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from handlers.common import yuan
from storage.goals import month_bounds
from storage.ledger import CreditShare, period_losses, period_wins
from storage.models import Member
from storage.store import Store

DEAL_HEADERS = ("时间", "类型", "客户", "商机", "负责人", "金额（元）", "业绩分成", "输单原因")
_MONTH = re.compile(r"(\d{4})-(\d{1,2})")


class MonthError(ValueError):
    """A --month that is not YYYY-MM; the message is the Chinese line the command prints."""


def month_of(text: str | None, today: date) -> str:
    """"2026-11" (or "2026-1") as the month key; the current month when not given."""
    if not text:
        return f"{today.year:04d}-{today.month:02d}"
    matched = _MONTH.fullmatch(text.strip())
    if matched is None or not 1 <= int(matched.group(2)) <= 12:
        raise MonthError(f"月份「{text}」要写成 年-月，例如 --month 2026-11。")
    return f"{int(matched.group(1)):04d}-{int(matched.group(2)):02d}"


async def deal_rows(store: Store, month: str) -> tuple[str, tuple[str, ...], list[list[Any]]]:
    """(sheet title, headers, rows) of the bound team's wins, un-wins and losses in `month`."""
    tz = ZoneInfo(store.org.timezone)
    start, end = month_bounds(store, month)
    wins = await period_wins(store, start, end)
    losses = await period_losses(store, start, end)
    ids = {d.owner_id for d in wins.deals if d.owner_id} | {c.member_id for d in wins.deals for c in d.credits}
    ids |= {d.owner_id for d in losses if d.owner_id}
    members = await store.members_by_id(list(ids))

    def name(member_id: int | None) -> str:
        return members[member_id].name if member_id in members else ""

    rows: list[tuple[datetime, list[Any]]] = []
    for won in wins.deals:
        kind = "撤销赢单（往期赢单）" if won.reversal else "赢单"
        shares = _shares(won.credits, members)
        rows.append((won.at, [kind, won.customer, won.deal, name(won.owner_id), _money(won.fen), shares, ""]))
    for lost in losses:
        rows.append((lost.at, ["输单", lost.customer, lost.deal, name(lost.owner_id), _money(lost.fen), "",
                               lost.reason or ""]))
    rows.sort(key=lambda r: r[0])
    listed = [[at.astimezone(tz).replace(tzinfo=None), *row] for at, row in rows]
    listed.append([None, "合计", f"赢单 {wins.count} 个（已扣除撤销）", "", "", _money(wins.fen), "",
                   f"输单 {len(losses)} 个"])
    return f"{month} 赢单输单", DEAL_HEADERS, listed


def _shares(credits: list[CreditShare], members: dict[int, Member]) -> str:
    return "、".join(
        f"{members[c.member_id].name if c.member_id in members else c.member_id} {c.share_bp / 100:g}% "
        f"{c.fen / 100:,.2f}"
        for c in credits
    )


def _money(fen: int | None) -> float | None:
    value = yuan(fen)
    return float(value) if value is not None else None
