"""The numbers behind what managers read — the digest's sections, the weekly retro and the monthly
协作复盘 — gathered for one period and handed to the wording in handlers.reports /
handlers.manager_reports.

Won, lost, activity and pipeline numbers come from storage.ledger (the one module of period numbers,
so digest, retro, 看板 and the export agree); the forecast from storage.forecast. A past period shows
that period: the pipeline as it stood at its end, rebuilt from deal history, the help that was
waiting then. Current-state sections (forecast, overdue next steps) are shown only while the period
is still running, because history cannot tell them for a closed one.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from bot.messages import OutgoingMessage
from handlers import manager_reports as words
from handlers import reports
from handlers.periods import Period, current, week_of
from schedules.calendar import at_local, calendar_for, local_now
from schedules.jobs import TeamSchedule
from storage import ledger
from storage.forecast import forecast
from storage.manager_numbers import Roster, help_waiting, overdue_steps, owner_moves, team_roster
from storage.points import top_helpers
from storage.reports import ReportStore, WeekNumbers
from storage.store import Store

IDLE_DAYS = 14


def week_start_of(day: date) -> date:
    return week_of(day).start


def previous_month(day: date) -> Period:
    """The month before the one holding `day` (what the monthly job covers)."""
    return current("month", day).shift(-1)


def _bounds(first: date, after: date, tz: str) -> tuple[datetime, datetime]:
    return at_local(first, time(0), tz), at_local(after, time(0), tz)


def _counted_days(first: date, after: date, schedule: TeamSchedule, now: datetime) -> list[date]:
    """Working days of [first, after) whose stand-up is over: past days, and today once the summary ran."""
    local = local_now(now, schedule.tz)
    calendar = calendar_for(schedule.calendar)
    days = []
    for i in range((after - first).days):
        day = first + timedelta(days=i)
        if calendar.is_working_day(day) and (
            day < local.date() or (day == local.date() and local.time() >= schedule.summary_time)
        ):
            days.append(day)
    return days


async def participation(
    store: Store, roster: Roster, first: date, after: date, schedule: TeamSchedule, now: datetime
) -> float | None:
    """Answered stand-ups / expected ones: reps (not leads or admins), on working days that are over,
    from the day they joined, not on days they were on leave."""
    days = _counted_days(first, after, schedule, now)
    if not days:
        return None
    answers = await ReportStore(store).standup_answers_between(first, after)
    expected = answered = 0
    for tm in roster.reps:
        joined = local_now(tm.joined_at, schedule.tz).date()
        for day in days:
            if day < joined or roster.on_leave(tm.member.id, day):
                continue
            expected += 1
            answered += (tm.member.id, day) in answers
    return None if expected == 0 else answered / expected


def _idle_reps(
    roster: Roster, activity: dict[int, ledger.Activity], first: date, after: date, schedule: TeamSchedule
) -> list[int]:
    """Reps with no follow-up and no new customer in the period, leaving out those on leave on every
    working day of it and those who joined after it."""
    calendar = calendar_for(schedule.calendar)
    working = [first + timedelta(days=i) for i in range((after - first).days)]
    working = [d for d in working if calendar.is_working_day(d)] or working
    idle = []
    for tm in roster.reps:
        done = activity.get(tm.member.id)
        if done and (done.followups or done.new_customers):
            continue
        if local_now(tm.joined_at, schedule.tz).date() >= after:
            continue
        if all(roster.on_leave(tm.member.id, d) for d in working):
            continue
        idle.append(tm.member.id)
    return idle


def _wins(found: ledger.PeriodWins) -> list[words.WonLine]:
    lines = []
    for deal in found.deals:
        shares = [(c.member_id, c.share_bp) for c in deal.credits]
        lines.append(words.WonLine(deal.customer, deal.deal, deal.fen, deal.owner_id, shares, deal.reversal))
    return lines


def _stages(pipeline: dict[str, ledger.StageTotal]) -> dict[str, words.StageCount]:
    return {stage: words.StageCount(t.count, t.fen) for stage, t in pipeline.items()}


async def manager_view(
    store: Store,
    first: date,
    after: date,
    schedule: TeamSchedule,
    now: datetime,
    *,
    change_from: date,
    change_label: str,
) -> tuple[words.ManagerView, Roster, dict[int, ledger.Activity], ledger.PeriodWins]:
    """Every section for the local days [first, after): named wins and losses, the pipeline at the
    period's end (or now) against `change_from`, releases/transfers/reclaims, idle reps, waiting
    help, and — while the period runs — the month's forecast and today's overdue next steps. The ledger's
    activity and wins of the period come back too, so callers do not read them again."""
    start, end = _bounds(first, after, schedule.tz)
    until = min(end, now)
    today = local_now(now, schedule.tz).date()
    running = today < after
    this_month = current("month", today)
    wins = await ledger.period_wins(store, start, end)
    activity = await ledger.activity_by_member(store, start, end)
    roster = await team_roster(store, first, after)
    view = words.ManagerView(
        names={},
        won_count=wins.count,
        won_fen=wins.fen,
        wins=_wins(wins),
        losses=[
            words.LostLine(x.customer, x.deal, x.fen, x.owner_id, x.reason)
            for x in await ledger.period_losses(store, start, end)
        ],
        pipeline=_stages(await ledger.pipeline_at(store, until)),
        pipeline_before=_stages(await ledger.pipeline_at(store, at_local(change_from, time(0), schedule.tz))),
        change_label=change_label,
        forecast=await forecast(store, this_month.start, this_month.end) if running else None,
        overdue=await overdue_steps(store, today) if running else None,
        idle_reps=_idle_reps(roster, activity, first, min(after, today + timedelta(days=1)), schedule),
        moves=await owner_moves(store, start, end),
        waiting_help=await help_waiting(store, until),
        at=until,
    )
    ids = {w.owner_id for w in view.wins} | {m for w in view.wins for m, _ in w.shares}
    ids |= {x.owner_id for x in view.losses} | set(view.overdue or {}) | set(view.idle_reps or [])
    ids |= {m.from_id for m in view.moves} | {m.to_id for m in view.moves}
    ids |= {h.requester_id for h in view.waiting_help or []} | set(activity)
    members = await store.members_by_id([i for i in ids if i is not None])
    view.names = {i: m.name for i, m in members.items()}
    return view, roster, activity, wins


# --------------------------------------------------------------------- retro
async def build_retro(store: Store, week_start: date, schedule: TeamSchedule, now: datetime) -> OutgoingMessage:
    """The weekly retro: the week against the week before, with the named wins and losses, the
    pipeline at the week's end against its start, and who needs attention."""
    report = ReportStore(store)
    week_end = week_start + timedelta(days=7)
    last_start = week_start - timedelta(days=7)
    this_range = _bounds(week_start, week_end, schedule.tz)
    last_range = _bounds(last_start, week_start, schedule.tz)
    view, roster, activity, wins = await manager_view(
        store, week_start, week_end, schedule, now, change_from=week_start, change_label="较周初"
    )
    this = await report.week_numbers(*this_range, idle_days=IDLE_DAYS, wins=wins, activity=activity)
    last = await report.week_numbers(*last_range, idle_days=IDLE_DAYS)
    # 协作之星 come from the points ledger (taking, resolving, helping win), not from raw counts.
    this.top_helpers = [(m.id, p) for m, p in await top_helpers(store, *this_range)]
    rate = await participation(store, roster, week_start, week_end, schedule, now)
    last_roster = await team_roster(store, last_start, week_start)
    rate_last = await participation(store, last_roster, last_start, week_start, schedule, now)
    ids = set(last.followups_by_rep) | {m for m, _ in this.top_helpers}
    view.names.update({i: m.name for i, m in (await store.members_by_id(list(ids - set(view.names)))).items()})
    return reports.weekly_retro(store.team.name, week_start, this, last, rate, rate_last, view)


# ------------------------------------------------------------- monthly retro
async def build_month_retro(store: Store, month: Period, schedule: TeamSchedule, now: datetime) -> OutgoingMessage:
    """协作复盘 of `month` (handlers.periods.month_of): wins and losses named, the pipeline at the month's end against
    its start, new customers and follow-ups per rep, help taken and resolved with 协作之星, and the
    stand-up participation."""
    first, after = month.start, month.end
    view, roster, activity, _ = await manager_view(
        store, first, after, schedule, now, change_from=first, change_label="较月初"
    )
    start, end = _bounds(first, after, schedule.tz)
    help_numbers = await ReportStore(store).help_numbers(WeekNumbers(), start, end)
    numbers = words.MonthNumbers(
        new_customers=sum(a.new_customers for a in activity.values()),
        followups_by_rep={m: a.followups for m, a in activity.items() if a.followups},
        new_by_rep={m: a.new_customers for m, a in activity.items() if a.new_customers},
        help_raised=help_numbers.help_raised,
        help_taken=help_numbers.help_taken,
        help_resolved=help_numbers.help_resolved,
        top_helpers=[(m.id, p) for m, p in await top_helpers(store, start, end)],
        participation=await participation(store, roster, first, after, schedule, now),
    )
    ids = {m for m, _ in numbers.top_helpers} - set(view.names)
    view.names.update({i: m.name for i, m in (await store.members_by_id(list(ids))).items()})
    return words.monthly_retro(store.team.name, month.start, view, numbers)


# -------------------------------------------------------------------- digest
async def digest_view(
    store: Store, day: date, schedule: TeamSchedule, now: datetime
) -> tuple[words.ManagerView, dict[int, ledger.Activity]]:
    """The digest's sections for `day` (the day's wins and losses, the pipeline now against Monday), and
    the day's activity per member for its per-rep lines."""
    view, roster, activity, _ = await manager_view(
        store, day, day + timedelta(days=1), schedule, now, change_from=week_start_of(day), change_label="较本周一"
    )
    view.participation = await participation(store, roster, day, day + timedelta(days=1), schedule, now)
    return view, activity
