"""Deal amounts as reps type them in chat (50万, 1.2亿, 30k, ￥300,000) and as the bot shows them back.

Amounts are ``Decimal`` yuan rounded to the fen: money must add up exactly in pipeline totals, and
floats would not.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Final

__all__ = ["AmountError", "format_amount", "parse_amount"]

_EXAMPLE: Final = "示例：50万、1.2亿、300000、30k"

#: 10万亿 yuan. Nobody's deal is bigger; an amount above this is a typo (extra zeros, a phone number
#: pasted into the wrong field) and silently accepting it would wreck every pipeline total.
_MAX_AMOUNT: Final = Decimal("1e13")

_FEN: Final = Decimal("0.01")
_WAN: Final = Decimal(10_000)
_YI: Final = Decimal(100_000_000)

# Plenty of headroom over the 16 significant digits a maximal amount in fen needs, so arithmetic
# here is exact and does not depend on whatever decimal context the caller has set.
_CTX: Final = Context(prec=40, rounding=ROUND_HALF_UP)

_UNITS: Final[dict[str, Decimal]] = {
    "": Decimal(1),
    "百": Decimal(100),
    "k": Decimal(1_000),
    "千": Decimal(1_000),
    "w": _WAN,
    "万": _WAN,
    "百万": Decimal(1_000_000),
    "千万": Decimal(10_000_000),
    "亿": _YI,
}

# Input is NFKC-folded and case-folded first, so ￥→¥, ５→5, ，→, and W/K→w/k before this runs.
# Thousands separators must be well-formed: 「3,00」 could be a European decimal comma, so it is
# rejected rather than guessed.
_AMOUNT_RE: Final = re.compile(
    r"""
    (?:¥|rmb|cny|人民币)?
    (?P<number>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)
    (?P<unit>百万|千万|百|千|万|亿|k|w)?
    (?:元整|元|块钱|块|圆|rmb|cny)?
    """,
    re.VERBOSE | re.ASCII,
)
_NEGATIVE_RE: Final = re.compile(r"(?:¥|rmb|cny|人民币)?[-−负]")


class AmountError(ValueError):
    """An amount the bot could not read; the message is Chinese and shows the accepted forms."""


def parse_amount(text: str) -> Decimal:
    """Read a Chinese-chat amount into yuan, rounded half-up to the fen.

    Only yuan is accepted: 「5万美元」 is refused rather than booked as 5万 yuan. Zero is allowed so a
    free pilot can still be recorded.
    """
    cleaned = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).casefold()
    if not cleaned:
        raise AmountError(f"请写上金额。{_EXAMPLE}")
    if _NEGATIVE_RE.match(cleaned):
        raise AmountError(f"金额不能是负数：「{_echo(text)}」。{_EXAMPLE}")
    match = _AMOUNT_RE.fullmatch(cleaned)
    if match is None:
        raise AmountError(f"金额看不懂：「{_echo(text)}」。{_EXAMPLE}")
    try:
        number = Decimal(match["number"].replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern only lets plain decimals through
        raise AmountError(f"金额看不懂：「{_echo(text)}」。{_EXAMPLE}") from None
    amount = _CTX.multiply(number, _UNITS[match["unit"] or ""])
    if amount > _MAX_AMOUNT:
        raise AmountError(f"金额太大了：「{_echo(text)}」，请检查是不是多打了零。{_EXAMPLE}")
    return amount.quantize(_FEN, context=_CTX)


def format_amount(value: Decimal | int | None) -> str:
    """Show an amount the way reps say it: 1.2亿, 12.5万, 3,000元; 「—」 when unknown.

    At most two decimals in the chosen unit — enough to tell deals apart in a chat list, and the text
    reads back through :func:`parse_amount` to within that precision. The unit is chosen *after*
    rounding so 99,999,999 shows as 1亿 rather than 10000万.
    """
    if value is None:
        return "—"
    amount = Decimal(value)
    if not amount.is_finite():
        return "—"
    sign = "-" if amount < 0 else ""
    amount = abs(amount).quantize(_FEN, context=_CTX)
    wan = _CTX.divide(amount, _WAN).quantize(_FEN, context=_CTX)
    if amount >= _YI or wan >= 10_000:
        yi = _CTX.divide(amount, _YI).quantize(_FEN, context=_CTX)
        return f"{sign}{_trim(yi)}亿"
    if amount >= _WAN:
        # No thousands separator: 「9999万」 is how it is written; 「9,999万」 looks like a typo.
        return f"{sign}{_trim(wan, group=False)}万"
    return f"{sign}{_trim(amount)}元"


def _trim(value: Decimal, *, group: bool = True) -> str:
    """Thousands separators, and no trailing zeros after the point (12.50 → 12.5, 3.00 → 3)."""
    text = f"{value:,f}" if group else f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _echo(text: str) -> str:
    """The user's input quoted back, cut short so a pasted paragraph does not flood the group chat."""
    text = text.strip()
    return text if len(text) <= 20 else text[:20] + "…"
