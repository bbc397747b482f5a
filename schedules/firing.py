"""Exactly once: a firing of (job, team, slot) claims a unique key in the transaction that enqueues its
messages.

Whichever process inserts the `job_firings` row first sends; every other replica (or the same one after
a restart) finds the key taken and sends nothing. A crash before commit leaves neither the key nor the
messages, so the next tick inside the grace period fires again. The outbox dedup keys are derived from
the same key, a second line of defence.

`preview=True` runs the same code path in a transaction that is rolled back (nothing claimed, nothing
reclaimed, nothing queued) and returns the messages — `salesbot jobs run --print`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from schedules.holidays import load_days
from schedules.jobs import JOBS, Slot, TeamSchedule
from schedules.runners import RUNNERS, Push
from storage.database import Database
from storage.schedule_store import ScheduleStore, all_teams

log = logging.getLogger("salesbot.firing")

Status = Literal["sent", "already", "preview"]


@dataclass
class FiringResult:
    job: str
    team_id: int
    team_name: str
    slot: str
    status: Status
    pushes: list[Push] = field(default_factory=list)
    platform: str = ""


class _Rollback(Exception):
    pass


async def fire(
    db: Database,
    team_id: int,
    job: str,
    now: datetime,
    *,
    slot: Slot | None = None,
    force: bool = False,
    preview: bool = False,
    days: Mapping[date, str] | None = None,
) -> FiringResult:
    """Fire `job` for one team: claim, build, enqueue — all in one transaction.

    `days` are the organisation's own calendar days when the caller has them (the tick's cache);
    otherwise they are read here.
    """
    kind = JOBS[job]
    runner = RUNNERS[job]
    result: FiringResult | None = None
    try:
        async with db.transaction() as store:
            [(org, team)] = await all_teams(store, team_id)
            store.bind_team(org, team)
            if days is None:
                days = await load_days(store, org.id)
            schedule = TeamSchedule.of(team.settings, org.timezone, days)
            slot = slot or kind.slot_for_run(now, schedule)
            key = slot.key
            if force:
                key = f"{slot.key}!{now.strftime('%Y%m%dT%H%M%S')}"
            result = FiringResult(job, team.id, team.name, key, "preview" if preview else "sent", platform=org.platform)
            # A preview and the continuous jobs claim no firing key; the others run once per slot.
            once = preview or kind.continuous or await ScheduleStore(store).claim_firing(job, key, slot.due_at, now)
            if not once:
                result.status = "already"
                return result
            result.pushes = await runner(store, slot, schedule, now)
            if preview:
                raise _Rollback
            base = f"{job}:{team.id}:{key}"
            for index, push in enumerate(result.pushes):
                unnamed = base if index == 0 else f"{base}#{index}"
                dedup = f"{job}:{team.id}:{push.dedup}" if push.dedup else unnamed
                await store.enqueue(
                    platform=org.platform,
                    destination=push.destination,
                    dest_key=push.dest_key,
                    body=push.message.to_json(),
                    now=now,
                    dedup_key=dedup,
                )
            if not kind.continuous:
                await ScheduleStore(store).record_firing_messages(job, key, len(result.pushes))
            if result.pushes:
                log.info("fired %s for team %s slot %s: %d message(s)", job, team.id, key, len(result.pushes))
    except _Rollback:
        pass
    assert result is not None
    return result
