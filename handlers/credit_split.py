"""Credit for a shared win (业绩分成): `赢单 华为 200万 分成:张三60,李四40`, and the team's default.

Goals, 看板 and the 业绩 leaderboard count credited amounts, so a win two reps worked on can count for
both. A split names team members (with or without @) and whole percentages summing to 100; without
one a win follows the team's default (`设置 分成 负责人` — all to the owner, the default — or `平分`:
the owner and the customer's collaborators evenly). Storage turns the shares into fen that sum to the
won amount exactly (storage.credits). Collaboration points for a shared win are a separate reward and
stay as they are (handlers.points).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

from handlers.amounts import format_amount
from handlers.commands import Args, OptionSpec, SettingSet, UserError
from handlers.common import yuan
from storage.credits import Split, split_fen
from storage.models import Customer, Member
from storage.store import Store

SPLIT_EXAMPLE: Final = "赢单 华为 200万 分成:张三60,李四40"
SETTING_EXAMPLE: Final = "设置 分成 平分"
# teams.settings key: "owner" (all to the owner) or "even" (the owner and the collaborators evenly).
DEFAULT_KEY: Final = "credit_split"
DEFAULTS: Final = {"负责人": "owner", "平分": "even"}
DEFAULT_NAMES: Final = {"owner": "全部记给负责人", "even": "负责人和协作人平分"}

_ENTRY = re.compile(r"@?([^\s,、;@\d%]+?)\s*[:=]?\s*(\d{1,3})\s*%?")
_SEPARATORS = re.compile(r"[,、;]")


def _entries(value: str) -> list[tuple[str, int]] | None:
    """`张三60,@李四40%` → [("张三", 60), ("李四", 40)]; None when it does not read as a split."""
    found = []
    for part in _SEPARATORS.split(value.strip()):
        matched = _ENTRY.fullmatch(part.strip())
        if matched is None:
            return None
        found.append((matched.group(1), int(matched.group(2))))
    return found


SPLIT: Final = OptionSpec(
    "分成", ("split",), accepts=lambda v: _entries(v) is not None, valid_text="张三60,李四40 这样的成员和百分比"
)
settings = SettingSet()


async def parse_split(store: Store, value: str) -> list[tuple[Member, int]]:
    """A typed split, checked: team members, each once, whole percentages above 0 summing to 100."""
    entries = _entries(value) or []
    if not entries:
        raise UserError("分成要写成员和百分比。", example=SPLIT_EXAMPLE)
    chosen: list[tuple[Member, int]] = []
    for name, percent in entries:
        member = await _team_member(store, name)
        if any(m.id == member.id for m, _ in chosen):
            raise UserError(f"分成里「{member.name}」写了两次，每人写一次。", example=SPLIT_EXAMPLE)
        if percent <= 0:
            raise UserError(f"「{member.name}」的分成是 0，不参与分成就不用写。", example=SPLIT_EXAMPLE)
        chosen.append((member, percent))
    total = sum(p for _, p in chosen)
    if total != 100:
        raise UserError(f"分成加起来要等于 100，现在是 {total}。", example=SPLIT_EXAMPLE)
    return chosen


async def _team_member(store: Store, name: str) -> Member:
    found = [m for m in await store.find_members(name) if await _in_team(store, m)]
    if not found:
        raise UserError(f"找不到本团队成员「{name}」。分成只能记给团队成员。", example=SPLIT_EXAMPLE)
    if len(found) > 1:
        raise UserError(f"团队里有 {len(found)} 位「{name}」，请用 @ 选择要分成的人。", example=SPLIT_EXAMPLE)
    return found[0]


async def _in_team(store: Store, member: Member) -> bool:
    membership = await store.team_membership(member)
    return membership is not None and membership.left_at is None


async def default_split(store: Store, customer: Customer) -> list[tuple[Member, int]]:
    """The team default for a win without `分成`: the owner, or the owner and collaborators evenly."""
    owner = await store.owner_of(customer)
    people = [owner] if owner is not None else []
    if (store.team.settings or {}).get(DEFAULT_KEY) == "even":
        people += [m for m in await store.collaborators(customer) if owner is None or m.id != owner.id]
    return [(m, 1) for m in people]


def as_split(shares: list[tuple[Member, int]]) -> Split:
    return [(m.id, weight) for m, weight in shares]


def split_text(shares: list[tuple[Member, int]], amount_fen: int | None, owner_id: int | None) -> str:
    """`分成：张三 120万（60%）、李四 80万（40%）`, or "" when it all goes to the owner."""
    if not shares or (len(shares) == 1 and shares[0][0].id == owner_id):
        return ""
    weights = [w for _, w in shares]
    fens = split_fen(amount_fen or 0, weights)
    total = sum(weights)
    parts = [
        f"{m.name} {format_amount(yuan(fen))}（{_percent(w, total)}）" for (m, w), fen in zip(shares, fens, strict=True)
    ]
    return "分成：" + "、".join(parts)


def _percent(weight: int, total: int) -> str:
    value = weight * 100 / total
    return f"{value:.0f}%" if value == int(value) else f"{value:.1f}%"


def _describe(store: Store) -> str:
    return f"赢单业绩分成默认：{DEFAULT_NAMES[(store.team.settings or {}).get(DEFAULT_KEY) or 'owner']}"


@settings.row("分成", role="admin", usage="设置 分成 负责人（或 平分）", describe=_describe)
async def _set_default(args: Args, value: str, store: Store, now: datetime) -> str:
    choice = DEFAULTS.get(value.strip())
    if choice is None:
        raise UserError("赢单分成默认可以是「负责人」（全部记给负责人）或「平分」（负责人和协作人平分）。",
                        example=SETTING_EXAMPLE)
    await store.update_team_settings({DEFAULT_KEY: choice}, now)
    return f"赢单业绩分成默认已设为：{DEFAULT_NAMES[choice]}（只影响以后的赢单；赢单时可写 分成:张三60,李四40）。"
