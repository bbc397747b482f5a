"""Job kinds and their time slots per team: *when* each push is due.

A slot is one firing of a job for a team: its key (the local date, or the ISO week for the retro) is
what the exactly-once claim is made on, and `due_at` is the instant it becomes due in UTC. Keys are
dates rather than times so that moving 晨会 from 09:00 to 09:30 after it has been sent does not send it
again the same day.

Times come from the team's settings (changed in chat with `设置 晨会 09:00` …) and are read on the
wall clock of the organisation's time zone; working days come from the team's calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from schedules.calendar import at_local, calendar_for, local_now

_UTC = UTC

WEEKDAY_NAMES = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")

DEFAULTS: dict[str, Any] = {
    "standup_time": "09:00",
    "summary_time": "09:45",
    "digest_time": "18:00",
    "retro_weekday": 4,
    "retro_time": "17:00",
    "month_retro_time": "10:00",
    "reclaim_time": "08:30",
    "pool_days": 30,
    "pool_warn_days": 3,
    "standup_mention": False,
    "calendar": "cn",
    "escalate_hours": 4,
}


def parse_hhmm(value: str) -> time:
    hour, _, minute = value.partition(":")
    return time(int(hour), int(minute or 0))


@dataclass(frozen=True)
class TeamSchedule:
    """A team's schedule settings with defaults filled in."""

    standup_time: time
    summary_time: time
    digest_time: time
    retro_weekday: int
    retro_time: time
    month_retro_time: time
    reclaim_time: time
    pool_days: int
    pool_warn_days: int
    standup_mention: bool
    calendar: str
    escalate_hours: float
    tz: str

    @classmethod
    def of(cls, settings: dict[str, Any] | None, tz: str) -> TeamSchedule:
        merged = {**DEFAULTS, **(settings or {})}
        calendar = merged["calendar"] if merged["calendar"] in ("cn", "weekdays") else "cn"
        return cls(
            standup_time=parse_hhmm(merged["standup_time"]),
            summary_time=parse_hhmm(merged["summary_time"]),
            digest_time=parse_hhmm(merged["digest_time"]),
            retro_weekday=int(merged["retro_weekday"]),
            retro_time=parse_hhmm(merged["retro_time"]),
            month_retro_time=parse_hhmm(merged["month_retro_time"]),
            reclaim_time=parse_hhmm(merged["reclaim_time"]),
            pool_days=int(merged["pool_days"]),
            pool_warn_days=int(merged["pool_warn_days"]),
            standup_mention=bool(merged["standup_mention"]),
            calendar=calendar,
            escalate_hours=float(merged["escalate_hours"]),
            tz=tz or "Asia/Shanghai",
        )

    def is_working_day(self, day: date) -> bool:
        return calendar_for(self.calendar).is_working_day(day)

    def today(self, now: datetime) -> date:
        return local_now(now, self.tz).date()


@dataclass(frozen=True)
class Slot:
    job: str
    key: str
    due_at: datetime  # UTC-aware instant
    day: date  # the local date the slot belongs to


@dataclass(frozen=True)
class JobKind:
    """A scheduled job: its name, what a person calls it, and how to find its slot on a local date."""

    name: str
    title: str
    working_days_only: bool
    weekly: bool = False
    monthly: bool = False  # the first working day of each month, keyed by the month
    continuous: bool = False  # checked every tick; exactly-once per item, not per slot

    def at(self, schedule: TeamSchedule) -> time:
        return {
            "standup": schedule.standup_time,
            "standup_summary": schedule.summary_time,
            "reminders": schedule.standup_time,
            "digest": schedule.digest_time,
            "retro": schedule.retro_time,
            "month_retro": schedule.month_retro_time,
            "reclaim": schedule.reclaim_time,
        }[self.name]

    def slot_on(self, day: date, schedule: TeamSchedule) -> Slot | None:
        """The slot of this job on local date `day`, or None when it does not fire that day."""
        if self.continuous:
            return None
        if self.weekly and day.weekday() != schedule.retro_weekday:
            return None
        if self.working_days_only and not schedule.is_working_day(day):
            return None
        if self.monthly and any(schedule.is_working_day(day.replace(day=d)) for d in range(1, day.day)):
            return None
        due = at_local(day, self.at(schedule), schedule.tz)
        return Slot(self.name, self._key(day), due.astimezone(_UTC), day)

    def _key(self, day: date) -> str:
        """The exactly-once key of the slot on `day`: its ISO week, its month, or the date."""
        if self.weekly:
            return f"{day.isocalendar().year}-W{day.isocalendar().week:02d}"
        if self.monthly:
            return f"{day.year:04d}-{day.month:02d}"
        return day.isoformat()

    def latest_slot(self, now: datetime, schedule: TeamSchedule, lookback_days: int = 1) -> Slot | None:
        """The most recent slot due at or before `now` (looking back over `lookback_days` local days)."""
        today = schedule.today(now)
        for offset in range(0, lookback_days + 1):
            slot = self.slot_on(today - timedelta(days=offset), schedule)
            if slot is not None and slot.due_at <= now:
                return slot
        return None

    def next_slot(self, now: datetime, schedule: TeamSchedule, horizon_days: int = 400) -> Slot | None:
        """The first slot due strictly after `now`."""
        today = schedule.today(now)
        for offset in range(0, horizon_days):
            slot = self.slot_on(today + timedelta(days=offset), schedule)
            if slot is not None and slot.due_at > now:
                return slot
        return None

    def slot_for_run(self, now: datetime, schedule: TeamSchedule) -> Slot:
        """The slot `jobs run` fires now: today's (or this week's) key even off schedule, due now."""
        today = schedule.today(now)
        key = now.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M") if self.continuous else self._key(today)
        return Slot(self.name, key, now, today)


JOBS: dict[str, JobKind] = {
    job.name: job
    for job in (
        JobKind("standup", "晨会提醒", working_days_only=True),
        JobKind("standup_summary", "晨会总结", working_days_only=True),
        JobKind("reminders", "跟进提醒", working_days_only=False),
        JobKind("digest", "主管日报", working_days_only=True),
        JobKind("retro", "每周复盘", working_days_only=True, weekly=True),
        JobKind("month_retro", "协作复盘", working_days_only=True, monthly=True),
        JobKind("reclaim", "公海回收", working_days_only=False),
        JobKind("escalation", "求助升级", working_days_only=False, continuous=True),
    )
}
