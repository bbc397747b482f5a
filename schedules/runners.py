"""What each job does for one team and slot: ask storage for numbers, ask a report builder for words,
and say where the message goes. Runners never send and never claim — `schedules.firing` does both, in
the transaction the runner works in, so a preview (`jobs run --print`) is the same code path.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from bot.messages import OutgoingMessage
from handlers import reports
from handlers.charts import retro_chart
from handlers.periods import month_of
from handlers.targets import METRIC_NAMES, period_progress
from schedules.calendar import at_local, local_now
from schedules.holidays import claim_year_notice, missing_year_text, year_to_announce
from schedules.jobs import Slot, TeamSchedule
from schedules.manager_reports import (
    build_month_retro,
    build_retro,
    digest_view,
    previous_month,
    week_start_of,
)
from storage.models import Customer, Member
from storage.push_marks import org_admins
from storage.reports import ReportStore
from storage.schedule_store import ScheduleStore, teams_with_open_help
from storage.store import Store

log = logging.getLogger("salesbot.jobs")

DIRECT_MESSAGE_PLATFORMS = ("wecom", "dingtalk")


@dataclass
class Push:
    destination: dict[str, Any]
    dest_key: str
    message: OutgoingMessage
    dedup: str | None = None  # set when a push is exactly-once per item rather than per slot


def team_push(store: Store, message: OutgoingMessage) -> Push:
    team = store.team
    return Push({"kind": "team", "team_id": team.id, "chat_id": team.chat_id}, f"team:{team.id}", message)


def member_push(member: Member, message: OutgoingMessage) -> Push:
    return Push({"kind": "member", "user_ids": [member.user_id]}, f"member:{member.id}", message)


Runner = Callable[[Store, Slot, TeamSchedule, datetime], Awaitable[list[Push]]]


def _utc_day(day: date, tz: str) -> tuple[datetime, datetime]:
    start = at_local(day, time(0), tz).astimezone(UTC)
    end = at_local(day + timedelta(days=1), time(0), tz).astimezone(UTC)
    return start, end


async def _present_members(ss: ScheduleStore, day: date) -> tuple[list[Member], list[Member]]:
    """(expected at the stand-up, on leave) for a day."""
    members = [tm.member for tm in await ss.active_members()]
    away = {leave.member_id for leave in await ss.leaves_between(day, day + timedelta(days=1))}
    return [m for m in members if m.id not in away], [m for m in members if m.id in away]


def _due_name(customer: Customer, day: date) -> str:
    """A customer due today by name; an overdue one says for how long, until it is followed up."""
    step = customer.next_followup_on
    if step is None or step >= day:
        return customer.name
    return f"{customer.name}（逾期 {(day - step).days} 天）"


# ------------------------------------------------------------------ stand-up
async def run_standup(store: Store, slot: Slot, schedule: TeamSchedule, now: datetime) -> list[Push]:
    ss = ScheduleStore(store)
    present, away = await _present_members(ss, slot.day)
    due: dict[int, list[str]] = {}
    for customer in await ss.followups_due(slot.day):
        due.setdefault(customer.owner_id or 0, []).append(_due_name(customer, slot.day))
    helping: dict[int, list[str]] = {}
    for req in await ss.open_help_requests():
        state = "待接" if req.status == "open" else "处理中"
        helping.setdefault(req.requester_id, []).append(f"#{req.number} {req.content[:20]}（{state}）")
        if req.helper_id:
            helping.setdefault(req.helper_id, []).append(f"帮忙 #{req.number}")
    entries = [reports.PromptEntry(m, due.get(m.id, []), 0, helping.get(m.id, [])) for m in present]
    return [team_push(store, reports.standup_prompt(store.team.name, slot.day, entries, away))]


async def run_standup_summary(store: Store, slot: Slot, schedule: TeamSchedule, now: datetime) -> list[Push]:
    ss = ScheduleStore(store)
    present, away = await _present_members(ss, slot.day)
    answers = {a.member_id: a for a in await ss.standup_answers(slot.day)}
    answered = [reports.StandupLine(m, answers[m.id].plan, answers[m.id].blockers) for m in present if m.id in answers]
    missing = [m for m in present if m.id not in answers]
    message = reports.standup_summary(
        store.team.name, slot.day, answered, missing, away, mention_missing=schedule.standup_mention
    )
    return [team_push(store, message)]


# ----------------------------------------------------------------- reminders
async def run_reminders(store: Store, slot: Slot, schedule: TeamSchedule, now: datetime) -> list[Push]:
    ss = ScheduleStore(store)
    customers = await ss.followups_due(slot.day)
    if not customers:
        return []
    owners = await ss.members_by_id([c.owner_id for c in customers if c.owner_id])
    per_owner: dict[int, list[str]] = {}
    for c in customers:
        per_owner.setdefault(c.owner_id or 0, []).append(_due_name(c, slot.day))
    rows = [(owners[o], names) for o, names in per_owner.items() if o in owners]
    return [team_push(store, reports.followup_reminders(slot.day, rows))]


# -------------------------------------------------------------------- digest
async def build_digest(
    store: Store, day: date, schedule: TeamSchedule, now: datetime, goals: list[reports.GoalProgress] | None = None
) -> OutgoingMessage:
    start, end = _utc_day(day, schedule.tz)
    if goals is None:
        goals = await _goal_rows(store, day)
    view, activity = await digest_view(store, day, schedule, now)
    numbers = await ReportStore(store).digest_numbers(
        start, end, now, schedule.pool_days, schedule.pool_warn_days, activity=activity
    )
    return reports.manager_digest(
        store.team.name, day, numbers, now, pool_days=schedule.pool_days, goals=goals or [], view=view
    )


async def _goal_rows(store: Store, day: date) -> list[reports.GoalProgress]:
    """This month's targets (reps, then the team; split from longer periods where not set) for the digest,
    from the same progress code as 看板; no targets → no section."""
    progress = await period_progress(store, month_of(day.year, day.month), day)
    rows = []
    for row in [*progress.rows, progress.team]:
        name = row.member.name if row.member else "团队合计"
        for metric, p in row.metrics.items():
            if p.target is None:
                continue
            if metric == "won_amount":
                target = Decimal(round(p.target.value)) / 100
                rows.append(reports.GoalProgress(name, Decimal(p.actual) / 100, target, "元"))
            else:
                rows.append(reports.GoalProgress(f"{name} {METRIC_NAMES[metric]}", p.actual, round(p.target.value)))
    return rows


async def run_digest(store: Store, slot: Slot, schedule: TeamSchedule, now: datetime) -> list[Push]:
    leads = await store.team_leads()
    pushes: list[Push] = []
    if store.org.platform in DIRECT_MESSAGE_PLATFORMS and not leads:
        log.info("digest skipped for team %s: no lead set (设置 主管 @成员)", store.team.id)
    elif store.org.platform in DIRECT_MESSAGE_PLATFORMS:
        message = await build_digest(store, slot.day, schedule, now)
        pushes = [member_push(lead, message) for lead in leads]
    else:
        # No direct messages on this platform (the console): the group stands in for the managers' group.
        pushes = [team_push(store, await build_digest(store, slot.day, schedule, now))]
    return pushes + await _holiday_data_notice(store, slot.day, now, leads)


async def _holiday_data_notice(store: Store, day: date, now: datetime, leads: list[Member]) -> list[Push]:
    """Once per organisation and year, with the first digest of December: next year's holidays are missing.

    To the organisation's admins and this digest's readers by direct message (the group on the console);
    a team with nobody to tell leaves the notice to the organisation's next digest.
    """
    year = await year_to_announce(store, day)
    if year is None:
        return []
    message = OutgoingMessage(missing_year_text(year), title=f"{year} 年节假日待录入")
    if store.org.platform in DIRECT_MESSAGE_PLATFORMS:
        readers = {m.id: m for m in [*await org_admins(store, store.org.id, store.org_admin_ids()), *leads]}
        pushes = [member_push(member, message) for member in readers.values()]
    else:
        pushes = [team_push(store, message)]
    if not pushes or not await claim_year_notice(store, year, now):
        return []
    for push in pushes:
        push.dedup = f"holidays:{year}:{push.dest_key}"
    return pushes


# --------------------------------------------------------------------- retro
async def run_retro(store: Store, slot: Slot, schedule: TeamSchedule, now: datetime) -> list[Push]:
    """The retro's text, then its chart as a picture of its own (when there is a font to draw with)."""
    start = week_start_of(slot.day)
    pushes = [team_push(store, await build_retro(store, start, schedule, now))]
    image = await retro_chart(store, start, schedule.tz)
    if image is not None:
        pushes.append(team_push(store, OutgoingMessage(image.alt, image=image)))
    return pushes


async def run_month_retro(store: Store, slot: Slot, schedule: TeamSchedule, now: datetime) -> list[Push]:
    """协作复盘 of the month before the slot's (its first working day)."""
    return [team_push(store, await build_month_retro(store, previous_month(slot.day), schedule, now))]


# ---------------------------------------------------------------------- pool
async def run_reclaim(store: Store, slot: Slot, schedule: TeamSchedule, now: datetime) -> list[Push]:
    ss = ScheduleStore(store)
    cutoff = now - timedelta(days=schedule.pool_days)
    reclaimed: dict[int, list[str]] = {}
    reclaimed_ids: set[int] = set()
    for customer in await ss.owned_idle_since(cutoff):
        owner_id = customer.owner_id or 0
        if await ss.reclaim_to_pool(customer, cutoff, now):
            reclaimed.setdefault(owner_id, []).append(customer.name)
            reclaimed_ids.add(customer.id)
    warn_cutoff = now - timedelta(days=schedule.pool_days - schedule.pool_warn_days)
    warned: dict[int, list[str]] = {}
    for customer in await ss.owned_idle_since(warn_cutoff):
        if customer.id in reclaimed_ids:
            continue
        # One warning per idle stretch: the key is the last activity the warning is about.
        if await ss.add_notice("pool_warn", customer.id, customer.last_activity_at.isoformat(), now):
            warned.setdefault(customer.owner_id or 0, []).append(customer.name)
    owners = await ss.members_by_id(list(set(reclaimed) | set(warned)))
    pushes = []
    if reclaimed:
        rows = [(owners[o], names) for o, names in reclaimed.items() if o in owners]
        pushes.append(team_push(store, reports.pool_reclaimed(schedule.pool_days, rows)))
    if warned:
        rows = [(owners[o], names) for o, names in warned.items() if o in owners]
        pushes.append(team_push(store, reports.pool_warning(schedule.pool_days, schedule.pool_warn_days, rows)))
    return pushes


# ---------------------------------------------------------------- escalation
async def run_escalation(store: Store, slot: Slot, schedule: TeamSchedule, now: datetime) -> list[Push]:
    ss = ScheduleStore(store)
    hours = schedule.escalate_hours
    # Working hours never outrun real ones, so only requests older than `hours` in real time can be due.
    candidates = await ss.open_help_created_before(now - timedelta(hours=hours))
    if not candidates:
        return []
    calendar = schedule.work_calendar
    leads = await store.team_leads()
    requesters = await ss.members_by_id([r.requester_id for r in candidates])
    pushes = []
    for req in candidates:
        due = calendar.add_working_hours(local_now(req.created_at, schedule.tz), hours)
        if due > now:
            continue
        if not await ss.add_notice("escalate", req.id, "lead", now):
            continue
        message = reports.help_escalation(req.number, req.content, requesters[req.requester_id], leads, hours)
        push = team_push(store, message)
        push.dedup = f"help:{req.id}"
        pushes.append(push)
    return pushes


# Continuous jobs run every tick; where most teams have nothing for one, one query per tick names the
# teams that may (instead of a transaction per team and minute — hundreds with hundreds of groups).
CANDIDATES: dict[str, Callable[[Store], Awaitable[set[int]]]] = {  # (unbound store) -> team ids
    "escalation": teams_with_open_help,
}

RUNNERS: dict[str, Runner] = {
    "standup": run_standup,
    "standup_summary": run_standup_summary,
    "reminders": run_reminders,
    "digest": run_digest,
    "retro": run_retro,
    "month_retro": run_month_retro,
    "reclaim": run_reclaim,
    "escalation": run_escalation,
}
