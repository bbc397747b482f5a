"""Forgetting delivery bookkeeping once it can no longer matter.

Every chat message leaves an `inbound_messages` row (its dedup key) and every reply or push an `outbox`
row. Once a message is processed and its replies delivered (or given up), those rows only answer "was
this re-delivery seen?" and "what happened to that push?" — questions nobody asks a month later. Left
alone they grow by a few rows per command for ever. The audit log, follow-ups and everything else a user
or a report reads are never touched here. `Database.prune_bookkeeping` runs it chunk by chunk.

Rendered charts (storage.charts, the retro's picture behind a DingTalk image link) go after the same
period: the link in an old message then shows nothing, the numbers stay in the text.

A DingTalk robot signature is kept on its inbound row (storage.inbound): it matters only within the
timestamp window (at most a day, see `Settings.dingtalk_sign_window_s`), so it goes with the row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select

from storage.inbound import REPLAYED
from storage.models import ChartImage, InboundMessage, OutboxMessage
from storage.store import Store

CHUNK = 5000  # rows per DELETE: short transactions, no long lock on a busy table
TABLES = ("outbox", "inbound_messages", "chart_images")


Pruned = type[OutboxMessage] | type[InboundMessage] | type[ChartImage]


def _finished(name: str, cutoff: datetime) -> tuple[Pruned, Select[Any]]:
    """The model and the ids of its finished rows whose last activity is before `cutoff`."""
    if name == "chart_images":
        return ChartImage, select(ChartImage.id).where(ChartImage.created_at < cutoff)
    if name == "outbox":
        o = OutboxMessage
        # next_attempt_at is when a row was last tried: for a sent row, when it went out.
        return o, select(o.id).where(o.status.in_(("sent", "failed")), o.next_attempt_at < cutoff)
    i = InboundMessage
    return i, select(i.id).where(i.status.in_(("done", "failed", REPLAYED)), i.received_at < cutoff)


async def prune_chunk(store: Store, name: str, cutoff: datetime) -> int:
    """Delete up to CHUNK finished rows of table `name` older than `cutoff` in this unit of work."""
    model, finished = _finished(name, cutoff)
    ids = list((await store.session.execute(finished.limit(CHUNK))).scalars())
    if ids:
        await store.session.execute(delete(model).where(model.id.in_(ids)))
    return len(ids)
