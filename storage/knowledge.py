"""Team knowledge (分享 / 搜): tips, searched by substring.

Chinese has no spaces between words, so a word index would miss 「报价」 inside 「报价技巧：先问预算」;
a plain substring match (LIKE, ILIKE on PostgreSQL) finds it, and at a team's scale — hundreds or a
few thousand tips — a scan is fast. If tips ever grow to hundreds of thousands, a pg_trgm GIN index
on title/content serves the same ILIKE queries without changing this code.
Tips are shared across the organisation: every query filters on the organisation only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select

from storage.models import Member, Team, Tip
from storage.sql import escape_like
from storage.store import Store


async def add_tip(store: Store, title: str, content: str, tags: list[str], now: datetime) -> Tip:
    tip = Tip(
        org_id=store.org.id,
        team_id=store.team.id,
        author_id=store.actor.id,
        title=title[:200],
        content=content,
        tags=" ".join(f"#{t}" for t in tags)[:255],
        created_at=now,
    )
    store.session.add(tip)
    await store.session.flush()
    await store.audit("share_tip", "tip", tip.id, None, {"title": tip.title, "tags": tip.tags}, now)
    return tip


async def search_tips(
    store: Store, keywords: list[str], limit: int = 10
) -> list[tuple[Tip, Member, Team]]:
    """Tips of the organisation containing every keyword (in title, content or tags), newest first."""
    postgres = store.dialect == "postgresql"
    conditions = []
    for word in keywords:
        pattern = f"%{escape_like(word)}%"
        alternatives = [
            column.ilike(pattern, escape="\\") if postgres else column.like(pattern, escape="\\")
            for column in (Tip.title, Tip.content, Tip.tags)
        ]
        conditions.append(or_(*alternatives))
    rows = await store.session.execute(
        select(Tip, Member, Team)
        .join(Member, Member.id == Tip.author_id)
        .join(Team, Team.id == Tip.team_id)
        .where(Tip.org_id == store.org.id, and_(*conditions))
        .order_by(Tip.created_at.desc(), Tip.id.desc())
        .limit(limit)
    )
    return [(t, m, team) for t, m, team in rows.all()]

