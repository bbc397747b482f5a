"""Rendered charts kept for platforms that show a picture only from a URL (storage.models.ChartImage).

The PNG is drawn when the outbox delivers the picture (bot.charts), not by the unit of work that queued it,
and kept here before the message linking to it goes out; a retried delivery finds it here and does not
draw again. The id is 128 random bits: a team's numbers are reachable only by someone handed the link. Nothing here
lists images; the housekeeping deletes them after the retention period like other delivery bookkeeping.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select

from storage.models import ChartImage, Team
from storage.store import Store


def new_chart_id() -> str:
    """An unguessable id (22 URL-safe characters)."""
    return secrets.token_urlsafe(16)


async def save_chart_image(store: Store, chart_id: str, team_id: int, png: bytes, now: datetime) -> None:
    """Keep team `team_id`'s chart under `chart_id` — drawn at delivery, in a short transaction of its own
    that commits before the message linking to it is sent. A copy already kept under that id (another
    replica drew it meanwhile: same numbers, same picture) is left as it is."""
    if await chart_image(store, chart_id) is not None:
        return
    org_id = (await store.session.execute(select(Team.org_id).where(Team.id == team_id))).scalar_one()
    store.session.add(ChartImage(id=chart_id, org_id=org_id, team_id=team_id, png=png, created_at=now))
    await store.session.flush()


async def chart_image(store: Store, chart_id: str) -> bytes | None:
    """The PNG stored under `chart_id`, or None (unknown, or already forgotten)."""
    found = await store.session.execute(select(ChartImage.png).where(ChartImage.id == chart_id))
    png = found.scalar_one_or_none()
    return bytes(png) if png is not None else None
