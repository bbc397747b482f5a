"""SQL for an organisation's own holidays (假期) and make-up working days (调休): `calendar_days`.

Entries are organisation-wide (every team of the corp), one per day: writing a day that has an entry
replaces it, so a correction is simply a new entry. Every change raises `organisations.calendar_version`
in the same transaction, which is how the scheduler's cached calendars learn they are stale (see
`schedules.holidays`). Reads take an organisation id rather than the bound scope, because the scheduler
reads many organisations in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from storage.models import AuditLog, CalendarDay, Organisation
from storage.scope import NotBound, Scope
from storage.sql import insert_for, rowcount, table_of
from storage.store import Store

HOLIDAY = "holiday"
WORKDAY = "workday"
KINDS = (HOLIDAY, WORKDAY)
SOURCES = ("admin", "import")


@dataclass(frozen=True)
class DayEntry:
    """One day to write: `kind` is holiday or workday, `name` what it is (春节, 春节调休, or "")."""

    day: date
    kind: str
    name: str = ""


@dataclass(frozen=True)
class Written:
    """What a write changed: days new to the calendar, days whose entry was replaced (kind or name)."""

    added: int
    replaced: int
    unchanged: int


async def write_days(
    store: Store, org_id: int, entries: Sequence[DayEntry], source: str, now: datetime, *, actor_id: int | None = None
) -> Written:
    """Write `entries` for organisation `org_id` (one per day; the last one of a day wins), audit-logged.

    Days that already hold the same kind and name are left as they are; others are replaced.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown calendar source {source!r}")
    wanted = {e.day: e for e in entries}
    if not wanted:
        return Written(0, 0, 0)
    existing = {
        row.day: row
        for row in (
            await store.session.execute(
                select(CalendarDay).where(CalendarDay.org_id == org_id, CalendarDay.day.in_(list(wanted)))
            )
        ).scalars()
    }
    same = {d for d, row in existing.items() if (row.kind, row.name) == (wanted[d].kind, wanted[d].name)}
    replace = [d for d in existing if d not in same]
    if replace:
        await store.session.execute(
            delete(CalendarDay).where(CalendarDay.org_id == org_id, CalendarDay.day.in_(replace))
        )
    fresh = [e for d, e in sorted(wanted.items()) if d not in same]
    if fresh:
        rows = [
            {"org_id": org_id, "day": e.day, "kind": e.kind, "name": e.name[:32], "source": source,
             "created_by_id": actor_id, "created_at": now}
            for e in fresh
        ]
        # ON CONFLICT DO NOTHING: an admin writing the same day at the same moment keeps theirs.
        await store.session.execute(insert_for(store.dialect, table_of(CalendarDay), ("org_id", "day")), rows)
        await _bump_version(store, org_id)
        await _audit(
            store, org_id, "calendar_set",
            {"replaced": [d.isoformat() for d in sorted(replace)]} if replace else None,
            {"kinds": sorted({e.kind for e in fresh}), "from": fresh[0].day.isoformat(),
             "to": fresh[-1].day.isoformat(), "days": len(fresh), "source": source},
            now,
        )
    return Written(added=len(fresh) - len(replace), replaced=len(replace), unchanged=len(same))


async def remove_days(store: Store, org_id: int, start: date, end: date, now: datetime) -> list[CalendarDay]:
    """Delete organisation `org_id`'s entries from `start` to `end` inclusive; return what was removed."""
    in_range = (CalendarDay.org_id == org_id, CalendarDay.day >= start, CalendarDay.day <= end)
    removed = list((await store.session.execute(select(CalendarDay).where(*in_range))).scalars())
    if removed:
        await store.session.execute(delete(CalendarDay).where(*in_range))
        await _bump_version(store, org_id)
        await _audit(
            store, org_id, "calendar_remove", {"days": [(r.day.isoformat(), r.kind, r.name) for r in removed]}, None,
            now,
        )
    return removed


async def _bump_version(store: Store, org_id: int) -> None:
    result = await store.session.execute(
        update(Organisation)
        .where(Organisation.id == org_id)
        .values(calendar_version=Organisation.calendar_version + 1)
        .execution_options(synchronize_session=False)
    )
    assert rowcount(result) == 1


async def _audit(
    store: Store, org_id: int, action: str, before: dict[str, Any] | None, after: dict[str, Any] | None, now: datetime
) -> None:
    """The audit row of a calendar change: through the chat's scope (team, member, message) when a command
    made it, else an organisation-wide row with nobody named (`salesbot calendar import`)."""
    try:
        scope: Scope | None = store.scope
    except NotBound:
        scope = None
    if scope is not None and scope.org.id == org_id:
        await store.audit(action, "calendar", None, before, after, now)
        return
    store.session.add(
        AuditLog(org_id=org_id, team_id=None, actor_id=None, action=action, entity="calendar", entity_id=None,
                 before=before, after=after, msg_id=None, created_at=now)
    )


async def org_days(store: Store, org_id: int, start: date | None = None, end: date | None = None) -> list[CalendarDay]:
    """An organisation's entries in date order, optionally only those in [start, end)."""
    query = select(CalendarDay).where(CalendarDay.org_id == org_id)
    if start is not None:
        query = query.where(CalendarDay.day >= start)
    if end is not None:
        query = query.where(CalendarDay.day < end)
    return list((await store.session.execute(query.order_by(CalendarDay.day))).scalars())


async def day_kinds(store: Store, org_ids: Iterable[int]) -> dict[int, dict[date, str]]:
    """{org id: {day: kind}} for `org_ids` in one query — what the scheduler's calendars are made of.

    Every organisation asked for is in the answer (an empty dict when it has no entries).
    """
    wanted = set(org_ids)
    found: dict[int, dict[date, str]] = {org_id: {} for org_id in wanted}
    if not wanted:
        return found
    rows = await store.session.execute(
        select(CalendarDay.org_id, CalendarDay.day, CalendarDay.kind).where(CalendarDay.org_id.in_(wanted))
    )
    for org_id, day, kind in rows.all():
        found[org_id][day] = kind
    return found


async def count_in_year(store: Store, org_id: int, year: int) -> int:
    """How many entries an organisation has in `year` (the December notice asks about next year)."""
    query = select(func.count()).where(
        CalendarDay.org_id == org_id, CalendarDay.day >= date(year, 1, 1), CalendarDay.day < date(year + 1, 1, 1)
    )
    return int((await store.session.execute(query)).scalar_one())
