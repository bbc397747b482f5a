"""Re-keying customers when the 撞单 key's rules change (handlers.names.NAME_KEY_VERSION).

A customer's `norm_name` is made once, at the claim. When the normaliser learns more (place names,
traditional characters), customers stored before keep the old key and a claim under the new key no
longer meets them. Each organisation records the version its keys were made with; start-up re-keys
those whose version differs. The normaliser is passed in: storage does not import handlers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from storage.models import Customer, Organisation, Team
from storage.scope import StoreBase
from storage.sql import rowcount


@dataclass
class _Row:
    id: int
    team_id: int
    old: str
    new: str
    was_duplicate_of: int | None
    duplicate_of: int | None

    @property
    def changed(self) -> bool:
        return self.new != self.old or self.duplicate_of != self.was_duplicate_of


class RekeyQueries(StoreBase):
    async def stale_name_key_orgs(self, version: int) -> list[int]:
        """The organisations whose keys were made with another version: one query, nothing when current."""
        rows = await self.session.execute(select(Organisation.id).where(Organisation.name_key_version != version))
        return list(rows.scalars().all())

    async def take_name_key_version(self, org_id: int, version: int) -> bool:
        """Record `version` for the organisation and bind to it, unless it holds that version already.

        A conditional UPDATE: of two replicas starting at once, the second waits for the first's row lock,
        then finds the version current and re-keys nothing. Binds to the organisation's first team (the
        audit rows name each customer's own team); False when there is nothing to do.
        """
        taken = await self.session.execute(
            update(Organisation)
            .where(Organisation.id == org_id, Organisation.name_key_version != version)
            .values(name_key_version=version)
            .execution_options(synchronize_session=False)
        )
        if rowcount(taken) != 1:
            return False
        org = (await self.session.execute(select(Organisation).where(Organisation.id == org_id))).scalar_one()
        team = (
            await self.session.execute(select(Team).where(Team.org_id == org_id).order_by(Team.id).limit(1))
        ).scalar_one_or_none()
        if team is None:
            return False  # no team, no customers
        self.bind_team(org, team)
        return True

    async def rekey_customer_names(self, normalise: Callable[[str], str], now: datetime) -> int:
        """Give the bound organisation's customers the key `normalise` makes of their name; the number changed.

        A new key another customer of the organisation already holds keeps both rows: the younger (higher
        id) is marked a possible duplicate of the older (`duplicate_of_id`, as 0011_org_customers does),
        listed to its lead in 我的 and joined by 合并. Within one team a key stays unique, so a row whose new
        key its own team already holds keeps its old key and is marked a duplicate of that holder.
        Each change is audit-logged ("rekey") under the customer's team.
        """
        rows = await self._plan(normalise)
        changed = [r for r in rows if r.changed]
        if not changed:
            return 0
        teams = {
            t.id: t for t in (await self.session.execute(select(Team).where(Team.org_id == self.org.id))).scalars()
        }
        org = self.org
        # Duplicates first (frees the organisation's partial index), then keys through a placeholder no
        # real key can equal (keys hold only letters and digits), so no statement meets a half-moved row.
        for row in changed:
            await self._set(row.id, duplicate_of_id=row.duplicate_of)
        moving = [r for r in changed if r.new != r.old]
        for row in moving:
            await self._set(row.id, norm_name=f"#rekey:{row.id}")
        for row in moving:
            await self._set(row.id, norm_name=row.new)
        for row in changed:
            self.bind_team(org, teams[row.team_id])
            before = {"norm_name": row.old, "duplicate_of": row.was_duplicate_of}
            after = {"norm_name": row.new, "duplicate_of": row.duplicate_of}
            await self.audit("rekey", "customer", row.id, before, after, now)
        return len(changed)

    async def _plan(self, normalise: Callable[[str], str]) -> list[_Row]:
        """Every customer's new key and duplicate mark, meeting both unique keys."""
        result = await self.session.execute(
            select(Customer.id, Customer.team_id, Customer.name, Customer.norm_name, Customer.duplicate_of_id)
            .where(Customer.org_id == self.org.id)
            .order_by(Customer.id)
        )
        rows = [_Row(i, team, old, normalise(name)[:200] or old, dup, dup) for i, team, name, old, dup in result.all()]
        blocked = _settle_team_keys(rows)
        originals: dict[str, int] = {}
        for row in rows:  # oldest first: the oldest non-duplicate of a key stays the original
            if row.duplicate_of is not None or row.id in blocked:
                continue
            original = originals.setdefault(row.new, row.id)
            if original != row.id:
                row.duplicate_of = original
        by_id = {r.id: r for r in rows}
        for row_id, holder_id in blocked.items():
            row, holder = by_id[row_id], by_id[holder_id]
            if row.duplicate_of is None:
                row.duplicate_of = holder.duplicate_of or holder.id
        return rows

    async def _set(self, customer_id: int, **values: object) -> None:
        await self.session.execute(
            update(Customer)
            .where(Customer.id == customer_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def _settle_team_keys(rows: list[_Row]) -> dict[int, int]:
    """Within each team, one row per key: a row whose new key is taken keeps its old one.

    Who keeps a contested key: the row holding it already, else the oldest. A row going back to its
    old key may contest it with one that moved there, so this repeats until no team has two rows of
    one key (rows only ever go back, and all-old is a valid state). Returns {row sent back: holder}.
    """
    blocked: dict[int, int] = {}
    while True:
        groups: dict[tuple[int, str], list[_Row]] = defaultdict(list)
        for row in rows:
            groups[(row.team_id, row.new)].append(row)
        contested = [group for group in groups.values() if len(group) > 1]
        if not contested:
            return blocked
        for group in contested:
            keeper = next((r for r in group if r.old == r.new), group[0])
            for row in group:
                if row is not keeper:
                    blocked.setdefault(row.id, keeper.id)
                    row.new = row.old
