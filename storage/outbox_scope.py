"""Which organisation an outbox row belongs to, for deliverers that serve several tenants of one platform.

A WeCom process may serve several corps; a row queued without a corp in its destination (schedules,
notices, rows from before multi-corp) is sent through the corp of the organisation it was queued for.
"""

from __future__ import annotations

from sqlalchemy import select

from storage.database import Database
from storage.models import Organisation, OutboxMessage


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
