"""Rendered charts kept for platforms that show a picture only from a URL (storage.models.ChartImage).

The id is 128 random bits: a team's numbers are reachable only by someone handed the link. Nothing here
lists images; the housekeeping deletes them after the retention period like other delivery bookkeeping.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select

from storage.models import ChartImage
from storage.store import Store


def new_chart_id() -> str:
    """An unguessable id (22 URL-safe characters)."""
    return secrets.token_urlsafe(16)


async def save_chart_image(store: Store, chart_id: str, png: bytes, now: datetime) -> None:
    """Keep the team's chart under `chart_id`, in the unit of work that queues the message linking to it."""
    store.session.add(ChartImage(id=chart_id, org_id=store.org.id, team_id=store.team.id, png=png, created_at=now))
    await store.session.flush()


async def chart_image(store: Store, chart_id: str) -> bytes | None:
    """The PNG stored under `chart_id`, or None (unknown, or already forgotten)."""
    found = await store.session.execute(select(ChartImage.png).where(ChartImage.id == chart_id))
    png = found.scalar_one_or_none()
    return bytes(png) if png is not None else None
