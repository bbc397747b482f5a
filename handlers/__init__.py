"""Business rules, one module per area of the product. Nothing here knows a chat platform."""

from __future__ import annotations

from handlers.commands import CommandSpec


def all_commands() -> list[CommandSpec]:
    """Every command of every area, in the order help lists them."""
    from handlers import (
        admin,
        customers,
        deals,
        followups,
        goals,
        guide,
        help_requests,
        knowledge,
        merge,
        points,
        standup,
    )

    specs: list[CommandSpec] = []
    for module in (customers, merge, deals, followups, help_requests, goals, points, knowledge, standup, admin, guide):
        specs.extend(module.commands.specs)
    return specs
