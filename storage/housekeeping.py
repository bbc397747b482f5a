"""Forgetting delivery bookkeeping once it can no longer matter.

Every chat message leaves an `inbound_messages` row (its dedup key) and every reply or push an `outbox`
row. Once a message is processed and its replies delivered (or given up), those rows only answer "was
this re-delivery seen?" and "what happened to that push?" — questions nobody asks a month later. Left
alone they grow by a few rows per command for ever. The audit log, follow-ups and everything else a user
or a report reads are never touched here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select

from storage.database import Database
from storage.models import InboundMessage, OutboxMessage

CHUNK = 5000  # rows per DELETE: short transactions, no long lock on a busy table


async def prune_bookkeeping(db: Database, now: datetime, keep_days: int) -> dict[str, int]:
    """Delete finished outbox rows (sent, failed) and finished inbound rows (done, failed) whose last
    activity is more than `keep_days` old; return how many of each went."""
    cutoff = now - timedelta(days=keep_days)
    o, i = OutboxMessage, InboundMessage
    targets = {
        # next_attempt_at is when a row was last tried: for a sent row, when it went out.
        "outbox": (o, select(o.id).where(o.status.in_(("sent", "failed")), o.next_attempt_at < cutoff)),
        "inbound_messages": (i, select(i.id).where(i.status.in_(("done", "failed")), i.received_at < cutoff)),
    }
    removed: dict[str, int] = {}
    for name, (model, finished) in targets.items():
        removed[name] = 0
        while True:
            async with db.transaction() as store:
                ids = list((await store.session.execute(finished.limit(CHUNK))).scalars())
                if ids:
                    await store.session.execute(delete(model).where(model.id.in_(ids)))
            removed[name] += len(ids)
            if len(ids) < CHUNK:
                break
    return removed
