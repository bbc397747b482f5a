"""Business rules, one module per area of the product. Nothing here knows a chat platform."""

from __future__ import annotations

from handlers.commands import CommandSpec


def all_commands() -> list[CommandSpec]:
    """Every command of every area, in the order help lists them."""
    from handlers import (
        admin,
        board_link,
        contacts,
        customers,
        deals,
        followups,
        goals,
        guide,
        help_requests,
        holidays,
        knowledge,
        members,
        merge,
        points,
        standup,
    )

    specs: list[CommandSpec] = []
    areas = (customers, contacts, merge, deals, followups, help_requests, goals, board_link, points, knowledge, standup,
             admin, holidays, members, guide)
    for module in areas:
        specs.extend(module.commands.specs)
    return specs
