"""The `key:value` options commands read, each with its English key and what a valid value is.

A command lists the ones it reads (`options=(STAGE, AMOUNT, NEXT)`); the router finds them in the
text whichever key the rep typed (阶段 / stage, with a colon or a space) and refuses an unknown value
with the valid ones, so a mistyped option never ends up stored as note text.
"""

from __future__ import annotations

from datetime import date
from typing import Final

from handlers.amounts import AmountError, parse_amount
from handlers.commands import OptionSpec
from handlers.common import OPEN_STAGES, STAGES
from handlers.dates import DateError, parse_date

# Words reps use for a stage, read as the stage itself.
STAGE_ALIASES: Final = {"赢": "赢单", "成交": "赢单", "签约": "赢单", "输": "输单", "丢单": "输单", "需求": "需求确认"}
STAGE_CHOICES: Final = f"{' → '.join(OPEN_STAGES)}，或 赢单/输单"

# Any day works as "today" for telling whether a value is a date at all; the handler checks the real
# one (a past 下次 is refused there, with the date it understood).
_SOME_DAY: Final = date(2024, 1, 1)


def _is_amount(value: str) -> bool:
    try:
        parse_amount(value)
    except AmountError:
        return False
    return True


def _is_date(value: str) -> bool:
    try:
        parse_date(value, _SOME_DAY)
    except DateError:
        return False
    return True


STAGE: Final = OptionSpec("阶段", ("stage",), values=(*STAGES, *STAGE_ALIASES), valid_text=STAGE_CHOICES)
AMOUNT: Final = OptionSpec("金额", ("amount",), accepts=_is_amount, valid_text="50万、1.2亿、300000、30k 这样的金额")
NEXT: Final = OptionSpec(
    "下次", ("next",), accepts=_is_date, valid_text="明天、周五、下周一、12-05、2026-12-05 这样的日期"
)
EXPECTED: Final = OptionSpec(
    "预计", ("expected",), accepts=_is_date, valid_text="2027-03-31、03-31、下周五 这样的日期"
)
BLOCKER: Final = OptionSpec("阻碍", ("卡点", "困难", "blocker"), tail=True)
