"""Which deal (商机) a command acts on, and how a deal reads in a list.

A customer usually has one open deal, and then a command names only the customer (`赢单 华为 120万`).
With several open at once (复购, 二期) the rep names the deal right after the customer
(`跟进 华为 二期 …`); without a name the bot lists them instead of guessing.
"""

from __future__ import annotations

from collections.abc import Sequence

from handlers.amounts import format_amount
from handlers.commands import UserError
from handlers.common import yuan
from storage.models import Customer, Deal

DEAL_STATUS_NAMES = {"open": "跟进中", "won": "已赢单", "lost": "已输单"}
FIRST_DEAL = "首单"


def choose_deal(customer: Customer, deals: Sequence[Deal], rest: str, *, example: str) -> tuple[Deal | None, str]:
    """(the deal named or the only one, the rest of the text without the deal's name).

    None when there is no deal to act on; several deals and no name → a UserError that lists them.
    """
    head, _, tail = rest.strip().partition(" ")
    named = [d for d in deals if d.name == head] if head else []
    if len(named) == 1:
        return named[0], tail.strip()
    if len(deals) <= 1:
        return (deals[0] if deals else None), rest.strip()
    listing = "\n".join(f"· {deal_line(d)}" for d in deals)
    raise UserError(
        f"「{customer.name}」有 {len(deals)} 个商机，请在客户名后写上商机名称：\n{listing}",
        example=example.replace("<商机>", deals[-1].name),
    )


def deal_label(customer: Customer, deal: Deal) -> str:
    """「华为」for a customer's first deal, 「华为·二期」for the others."""
    return f"「{customer.name}」" if deal.name == FIRST_DEAL else f"「{customer.name}·{deal.name}」"


def deal_line(deal: Deal, *, with_status: bool = False) -> str:
    """二期 · 报价 · 50万 (· 已赢单)."""
    parts = [deal.name, deal.stage]
    if deal.amount_fen:
        parts.append(format_amount(yuan(deal.amount_fen)))
    if with_status and deal.status != "open":
        parts.append(DEAL_STATUS_NAMES.get(deal.status, deal.status))
    return " · ".join(parts)


def stage_summary(deals: Sequence[Deal]) -> str:
    """How a customer's open deals read in 我的 and 公海: `报价 · 50万`, or `首单 报价；二期 线索`."""
    if len(deals) == 1:
        deal = deals[0]
        amount = f" · {format_amount(yuan(deal.amount_fen))}" if deal.amount_fen else ""
        return f"{deal.stage}{amount}"
    return "；".join(
        f"{d.name} {d.stage}" + (f" {format_amount(yuan(d.amount_fen))}" if d.amount_fen else "") for d in deals
    )
