"""The scheduler in the bot's event loop: every minute, fire whatever (job, team, slot) is due.

One APScheduler interval job ("tick") runs in the app's loop; the tick computes, for each team and job,
the latest slot due at or before now from the team's settings, the organisation's time zone and the
team's calendar — so a setting changed in chat takes effect at the next tick, with no trigger to
reschedule. Whether a slot is sent is decided by the database (`schedules.firing`), so any number of
replicas may tick at once.

After downtime a slot is caught up when it is less than `grace` old (30 min) and otherwise skipped
with a log line saying why: a bot restarted at 11:00 does not post the 09:00 stand-up prompt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from aiohttp import web

from bot.app_keys import DATABASE_KEY, METRICS_KEY, SETTINGS_KEY
from bot.metrics import Metrics
from schedules.firing import FiringResult, fire
from schedules.holidays import OrgCalendars
from schedules.jobs import JOBS, TeamSchedule
from schedules.runners import CANDIDATES
from storage.database import Database
from storage.schedule_store import all_teams, firings_since

log = logging.getLogger("salesbot.scheduler")

GRACE = timedelta(minutes=30)
TICK_SECONDS = 60
# Working out every team's due slots is pure computation (~45 µs a team); with hundreds of teams the
# tick hands the loop back every this many teams so that callbacks and replies never wait long for it.
YIELD_EVERY_TEAMS = 25
HOUSEKEEPING_EVERY = timedelta(days=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime] = utc_now,
        grace: timedelta = GRACE,
        tick_seconds: int = TICK_SECONDS,
        retention_days: int = 0,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics  # the app's (bot.metrics): firings by job and status
        self.clock = clock
        self.grace = grace
        self.tick_seconds = tick_seconds
        # (job, team_id, slot) known to be settled (sent by anyone, or skipped): saves a claim attempt
        # per tick. Only an optimisation — the database decides.
        self._settled: dict[tuple[str, int, str], datetime] = {}
        self._warmed = False
        # Each organisation's own holidays and 调休 days, re-read only when its calendar_version moves.
        self.calendars = OrgCalendars()
        # Finished delivery bookkeeping older than this is deleted once a day (0: never); see
        # storage.housekeeping. Every replica may do it: deleting what is gone already is harmless.
        self.retention_days = retention_days
        self._pruned_at: datetime | None = None
        self._aps = None

    async def warm_up(self, now: datetime) -> None:
        async with self.db.transaction() as store:
            for key in await firings_since(store, now - timedelta(days=3)):
                self._settled[key] = now
        self._warmed = True

    async def tick(self, now: datetime | None = None) -> list[FiringResult]:
        """Fire every due slot of every team once; return what this process fired."""
        now = now or self.clock()
        if not self._warmed:
            await self.warm_up(now)
        fired: list[FiringResult] = []
        async with self.db.transaction() as store:
            teams = await all_teams(store)
            candidates = {job: await find(store) for job, find in CANDIDATES.items()}
            await self.calendars.refresh(store, {org.id: org for org, _ in teams}.values())
        for index, (org, team) in enumerate(teams):
            if index and index % YIELD_EVERY_TEAMS == 0:
                await asyncio.sleep(0)  # the tick shares the loop with callbacks: let them in between teams
            days = self.calendars.days_of(org.id)
            schedule = TeamSchedule.of(team.settings, org.timezone, days)
            for kind in JOBS.values():
                try:
                    if kind.continuous:
                        if kind.name in candidates and team.id not in candidates[kind.name]:
                            continue
                        result = await fire(self.db, team.id, kind.name, now, days=days)
                        if result.pushes:
                            self._count(kind.name, result.status)
                            fired.append(result)
                        continue
                    slot = kind.latest_slot(now, schedule)
                    if slot is None:
                        continue
                    key = (kind.name, team.id, slot.key)
                    if key in self._settled:
                        continue
                    late = now - slot.due_at
                    if late > self.grace:
                        log.warning(
                            "skipped %s for team %s (%s) slot %s: due %s, now %s late (grace %s)"
                            " — not sending stale pushes",
                            kind.name, team.id, team.name, slot.key, slot.due_at.isoformat(), late, self.grace,
                        )
                        self._settled[key] = now
                        self._count(kind.name, "late")
                        continue
                    result = await fire(self.db, team.id, kind.name, now, slot=slot, days=days)
                    self._settled[key] = now
                    self._count(kind.name, result.status)
                    if result.status == "sent" and result.pushes:
                        fired.append(result)
                except Exception:
                    self._count(kind.name, "error")
                    log.exception(
                        "job %s failed for team %s; will retry next tick inside the grace period", kind.name, team.id
                    )
        self._prune(now)
        return fired

    def _count(self, job: str, status: str) -> None:
        """A slot this tick settled: sent, already (another replica or tick), late (past grace), error."""
        if self.metrics is not None:
            self.metrics.firing(job, status)

    def _prune(self, now: datetime) -> None:
        old = [k for k, seen in self._settled.items() if now - seen > timedelta(days=3)]
        for key in old:
            del self._settled[key]

    # ---------------------------------------------------------------- lifecycle
    async def housekeeping(self, now: datetime | None = None) -> dict[str, int] | None:
        """Prune finished bookkeeping when the last pass is a day old (or none ran yet); None if not due."""
        now = now or self.clock()
        if not self.retention_days or (self._pruned_at is not None and now - self._pruned_at < HOUSEKEEPING_EVERY):
            return None
        self._pruned_at = now
        removed = await self.db.prune_bookkeeping(now, self.retention_days)
        if any(removed.values()):
            log.info("housekeeping: removed %s (older than %d days)", removed, self.retention_days)
        return removed

    async def _tick_job(self) -> None:
        try:
            await self.tick()
        except Exception:
            log.exception("scheduler tick failed")
        try:
            await self.housekeeping()
        except Exception:
            log.exception("housekeeping failed; trying again tomorrow")

    def start(self) -> None:
        """Start ticking in the running event loop (the first tick now: catch-up on start)."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        aps = AsyncIOScheduler(timezone=UTC)
        aps.add_job(
            self._tick_job,
            # A trigger object, not the alias "interval": an alias makes APScheduler look its plugins up
            # in every installed distribution's metadata (importlib.metadata, ~1.5 MB kept for the
            # process's life).
            IntervalTrigger(seconds=self.tick_seconds, timezone=UTC),
            next_run_time=utc_now(),
            id="salesbot-tick",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=self.tick_seconds,
        )
        aps.start()
        self._aps = aps

    def stop(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None


SCHEDULER_KEY = web.AppKey("scheduler", Scheduler)


def scheduler_component(app: web.Application) -> None:
    """Run the scheduler for the app's lifetime (after the database is open)."""
    async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
        scheduler = Scheduler(app[DATABASE_KEY], retention_days=app[SETTINGS_KEY].retention_days,
                              metrics=app.get(METRICS_KEY))
        app[SCHEDULER_KEY] = scheduler
        scheduler.start()
        yield
        scheduler.stop()

    app.cleanup_ctx.append(scheduler_ctx)
