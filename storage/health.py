"""What the operator's endpoints read from the database: backlog sizes and ages (`/metrics`, `/readyz`).

Each is one aggregate over an index (`ix_outbox_unsent`, `ix_inbound_messages_waiting`, both partial) that
only touches rows still waiting or failed, so a scrape every few seconds stays cheap however much
finished bookkeeping the tables hold. Read in a bare session: no unit of work, no write lock on SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from storage.database import Database
from storage.models import InboundMessage, OutboxMessage
from storage.sql import status_in

UNSENT = ("pending", "sending", "failed")


@dataclass(frozen=True)
class Backlog:
    outbox: dict[tuple[str, str], int]  # (platform, status) → rows, for the statuses in UNSENT
    oldest_inbound: dict[str, datetime]  # platform → received_at of its oldest message still "received"


async def backlog(db: Database) -> Backlog:
    o, i = OutboxMessage, InboundMessage
    async with db.session() as session:
        counts = await session.execute(
            select(o.platform, o.status, func.count())
            .where(status_in(o.status, *UNSENT))
            .group_by(o.platform, o.status)
        )
        outbox = {(str(platform), str(status)): int(n) for platform, status, n in counts.all()}
        oldest = await session.execute(
            select(i.platform, func.min(i.received_at)).where(status_in(i.status, "received")).group_by(i.platform)
        )
        inbound = {str(platform): when for platform, when in oldest.all() if when is not None}
    return Backlog(outbox, inbound)
