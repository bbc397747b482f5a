"""The SQL behind durable "this team's group push is broken" marks (policy and wording: bot.broken).

The mark itself lives in `teams.settings` (JSON, next to the webhook key it is about), so every replica
sees it, `设置` changes it in the same row, and no migration is needed. These helpers only read and lock.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, or_, select

from storage.models import Member, Organisation, Team
from storage.store import Store


async def lock_team(store: Store, team_id: int) -> tuple[Organisation, Team] | None:
    """The team row, locked until commit (PostgreSQL), so two replicas that hit the same broken
    webhook at once open one episode, not two. SQLite serialises writers already."""
    team = await store.session.get(Team, team_id, with_for_update=True, populate_existing=True)
    if team is None:
        return None
    org = await store.session.get(Organisation, team.org_id)
    return (org, team) if org is not None else None


async def org_admins(store: Store, org_id: int, admin_ids: Iterable[str]) -> list[Member]:
    """Active members of the organisation who are admins (flag, or listed in SALESBOT_ADMINS)."""
    ids = list(admin_ids)
    condition = Member.is_admin.is_(True) if not ids else or_(Member.is_admin.is_(True), Member.user_id.in_(ids))
    rows = await store.session.execute(
        select(Member).where(Member.org_id == org_id, Member.active.is_(True), condition).order_by(Member.id)
    )
    return list(rows.scalars().all())


async def organisations_on(store: Store, platform: str) -> int:
    """How many organisations (corps, tenants) the bot knows on a platform."""
    query = select(func.count()).select_from(Organisation).where(Organisation.platform == platform)
    return int(await store.session.scalar(query) or 0)


async def teams_with_any_setting(store: Store, keys: Iterable[str]) -> list[tuple[Organisation, Team]]:
    """Teams whose settings hold a non-empty value for one of `keys` (filtered in Python: JSON
    operators differ between SQLite and PostgreSQL, and there are few teams)."""
    wanted = list(keys)
    rows = await store.session.execute(
        select(Organisation, Team).join(Team, Team.org_id == Organisation.id).order_by(Team.id)
    )
    return [(org, team) for org, team in rows.all() if any((team.settings or {}).get(k) for k in wanted)]
