"""What a deliverer looks up about a row's destination at send time.

A WeCom process may serve several corps; a row queued without a corp in its destination (schedules,
notices, rows from before multi-corp) is sent through the corp of the organisation it was queued for.
A "team" destination is resolved through the team's current settings (its group webhook or custom
robot), so an admin's new webhook applies to messages already queued.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from storage.database import Database
from storage.models import Organisation, OutboxMessage, Team


async def org_key_of_row(db: Database, row_id: int, platform: str) -> str | None:
    """The corp key (WeCom CorpID, DingTalk corp id …) of the row's organisation; None without one."""
    async with db.session() as session:
        return (
            await session.execute(
                select(Organisation.corp_key)
                .join(OutboxMessage, OutboxMessage.org_id == Organisation.id)
                .where(OutboxMessage.id == row_id, Organisation.platform == platform)
            )
        ).scalar_one_or_none()


async def team_push_target(db: Database, team_id: int) -> tuple[str, str, dict[str, Any]] | None:
    """(corp key of its organisation, group chat id, settings) of a team; None when the team is gone."""
    async with db.session() as session:
        row = (
            await session.execute(
                select(Organisation.corp_key, Team.chat_id, Team.settings)
                .join(Organisation, Organisation.id == Team.org_id)
                .where(Team.id == team_id)
            )
        ).first()
    return (row.corp_key, row.chat_id, dict(row.settings or {})) if row is not None else None


async def team_settings_by_chat(db: Database, platform: str, chat_id: str) -> dict[str, Any] | None:
    """The settings of the team bound to a group chat on a platform; None when there is none."""
    async with db.session() as session:
        row = (
            await session.execute(
                select(Team.settings)
                .join(Organisation, Organisation.id == Team.org_id)
                .where(Organisation.platform == platform, Team.chat_id == chat_id)
                .limit(1)
            )
        ).scalar_one_or_none()
    return dict(row) if row else None
