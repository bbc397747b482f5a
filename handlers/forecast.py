"""The forecast's win rates: `设置 赢率 <阶段> <百分比>` (leads), listed by `设置`.

The forecast itself (storage.forecast.forecast) weighs each open deal expected to close in the
month by its stage's rate; a team whose 报价 deals close half the time says so here instead of living
with the default 60%.
"""

from __future__ import annotations

import re
from datetime import datetime

from handlers.commands import Args, SettingSet, UserError
from handlers.common import OPEN_STAGES
from handlers.options import STAGE_ALIASES
from storage.store import Store
from storage.team_settings import DEFAULT_WIN_RATES, WIN_RATES, win_rates

settings = SettingSet()

RATE_EXAMPLE = "设置 赢率 报价 50%"
_VALUE = re.compile(r"^(\S+)\s+(\d{1,3})\s*[%％]?$")


def rates_text(rates: dict[str, int]) -> str:
    return " ".join(f"{stage}{rates[stage]}%" for stage in OPEN_STAGES)


@settings.row(
    "赢率",
    role="lead",
    usage=RATE_EXAMPLE,
    describe=lambda s: f"预测赢率：{rates_text(win_rates(s.team.settings))}",
)
async def _set_win_rate(args: Args, value: str, store: Store, now: datetime) -> str:
    found = _VALUE.match(value.strip())
    if not found:
        raise UserError("请写上阶段和百分比。", example=RATE_EXAMPLE)
    stage = STAGE_ALIASES.get(found.group(1), found.group(1))
    if stage not in OPEN_STAGES:
        raise UserError(f"赢率只能给跟进中的阶段设：{'、'.join(OPEN_STAGES)}。", example=RATE_EXAMPLE)
    percent = int(found.group(2))
    if percent > 100:
        raise UserError("赢率要在 0% 到 100% 之间。", example=RATE_EXAMPLE)
    own = dict((store.team.settings or {}).get(WIN_RATES) or {})
    own[stage] = percent
    await store.update_team_settings({WIN_RATES: own}, now)
    default = "（默认值）" if percent == DEFAULT_WIN_RATES[stage] else f"（默认 {DEFAULT_WIN_RATES[stage]}%）"
    return f"「{stage}」阶段的预测赢率已设为 {percent}%{default}。现在：{rates_text(win_rates(store.team.settings))}"
