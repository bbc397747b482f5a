"""The organisation's own holidays (设置 假期) and make-up working days (设置 调休).

`chinesecalendar` has the State Council's schedule only for the years it was released with; for any
other year the stand-up would fall back to Monday–Friday and go out in the middle of 春节. Admins enter
the year here (or with `salesbot calendar import`), and the entries take precedence over the package
for every year — also to correct it. Entries are organisation-wide: every team of the corp follows them
(a Mon–Fri team takes the holidays, not the make-up days; see `schedules.calendar`).

Anyone may list the entries (`设置 假期`); only admins change them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from bot.messages import IncomingMessage, Reply
from handlers.commands import ROLE_RANK, Args, CommandSet, UserError, role_refusal
from handlers.common import local_today
from handlers.dates import DateError, parse_date, weekday_name
from schedules.calendar import HOLIDAY, WORKDAY
from schedules.holidays import KIND_NAMES, SOURCE_NAMES, missing_year_text, missing_years
from storage.calendar_days import DayEntry, Written, org_days, remove_days, write_days
from storage.models import CalendarDay
from storage.store import Store

commands = CommandSet("管理")

HOLIDAY_EXAMPLE = "设置 假期 2027-02-06 到 2027-02-13 春节"
WORKDAY_EXAMPLE = "设置 调休 2027-02-14 春节调休"
REMOVE_EXAMPLE = "设置 假期 删除 2027-02-06"
MAX_DAYS = 60  # one entry covers at most this many days: a longer "holiday" is a typo
MAX_NAME = 16
_REMOVE_WORDS = ("删除", "取消", "移除", "delete", "remove")
_RANGE = re.compile(r"^(?P<first>\S+?)\s*(?:到|至|~)\s*(?P<last>\S+)(?:\s+(?P<name>.*))?$")
_ORG_WIDE = "（整个企业所有团队生效）"
KIND_WORDS = {HOLIDAY: "假期", WORKDAY: "调休"}


@commands.command(
    "设置 假期",
    "/holiday",
    summary="录入企业的假期（优先于节假日库，任何年份）",
    usage="设置 假期 <日期> [到 <日期>] [名称]；设置 假期 删除 <日期> [到 <日期>]；设置 假期（查看）",
    example=HOLIDAY_EXAMPLE,
    extra_words=("设置假期",),
    details=(
        "管理员录入整个企业的放假日（例如节假日库还没有的年份），这些天不发晨会和日报。"
        "只写「设置 假期」列出已录入的假期和调休；「设置 假期 删除 2027-02-06」删除录错的日子。"
    ),
)
async def set_holiday(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    return await _calendar_command(args, store, now, HOLIDAY)


@commands.command(
    "设置 调休",
    "/workday",
    summary="录入企业的调休上班日（周末补班）",
    usage="设置 调休 <日期> [到 <日期>] [名称]；设置 调休 删除 <日期>；设置 调休（查看）",
    example=WORKDAY_EXAMPLE,
    extra_words=("设置调休",),
    details="管理员录入整个企业的补班日（例如春节前后的周末），这天照常发晨会和日报。按周一到周五日历的团队不受影响。",
)
async def set_workday(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    return await _calendar_command(args, store, now, WORKDAY)


async def _calendar_command(args: Args, store: Store, now: datetime, kind: str) -> Reply:
    text = args.text.strip()
    today = local_today(store, now)
    if not text:
        return Reply(await listing(store, today))
    word = f"设置 {KIND_WORDS[kind]}"
    if ROLE_RANK[store.role] < ROLE_RANK["admin"]:
        raise UserError(role_refusal(word, "admin", store.role))
    head, _, rest = text.partition(" ")
    if head.lower() in _REMOVE_WORDS:
        return await _remove(store, rest.strip(), today, now)
    example = HOLIDAY_EXAMPLE if kind == HOLIDAY else WORKDAY_EXAMPLE
    first, last, name = read_range(text, today, example)
    written = await write_days(
        store, store.org.id, [DayEntry(first + timedelta(days=i), kind, name) for i in range((last - first).days + 1)],
        "admin", now, actor_id=store.actor.id,
    )
    return Reply(_confirmation(kind, first, last, name, written))


def read_range(text: str, today: date, example: str) -> tuple[date, date, str]:
    """`<日期> [到 <日期>] [名称]` → (first, last, name); a Chinese refusal with `example` otherwise."""
    found = _RANGE.match(text)
    if found:
        first_text, last_text, name = found["first"], found["last"], (found["name"] or "").strip()
    else:
        first_text, _, name = text.partition(" ")
        last_text, name = first_text, name.strip()
    first, last = _date(first_text, today, example), _date(last_text, today, example)
    if name and _looks_like_date(name, today):
        raise UserError("两个日期之间请写「到」。", example=example)
    if last < first:
        raise UserError(f"结束日期 {last} 早于开始日期 {first}。", example=example)
    if (last - first).days + 1 > MAX_DAYS:
        raise UserError(f"一次最多录入 {MAX_DAYS} 天，请分段录入。", example=example)
    if len(name) > MAX_NAME:
        raise UserError(f"名称最多 {MAX_NAME} 个字。", example=example)
    return first, last, name


def _date(text: str, today: date, example: str) -> date:
    try:
        return parse_date(text, today)
    except DateError as err:
        raise UserError(str(err), example=example) from None


def _looks_like_date(text: str, today: date) -> bool:
    try:
        parse_date(text.split()[0], today)
    except DateError:
        return False
    return True


def _day(d: date) -> str:
    return f"{d.isoformat()} {weekday_name(d)}"


def _span(first: date, last: date) -> str:
    if first == last:
        return _day(first)
    return f"{_day(first)} 到 {_day(last)}，共 {(last - first).days + 1} 天"


def _confirmation(kind: str, first: date, last: date, name: str, written: Written) -> str:
    label = f"「{name}」" if name else ""
    lines = [f"✅ 已录入{KIND_NAMES[kind]}{label}：{_span(first, last)}{_ORG_WIDE}。"]
    if written.replaced:
        lines.append(f"其中 {written.replaced} 天原有的录入已被替换。")
    if written.unchanged and not written.added and not written.replaced:
        lines[0] = f"✅ {KIND_NAMES[kind]}{label}已经录入过：{_span(first, last)}，没有变化。"
    if kind == HOLIDAY:
        lines.append("这些天不发晨会提醒、晨会总结和日报。")
    else:
        lines.append("按中国法定节假日日历（cn）的团队这天照常发晨会和日报；按周一到周五日历的团队不受影响。")
    lines.append(f"查看：设置 假期；录错了：设置 假期 删除 {first.isoformat()}")
    return "\n".join(lines)


async def _remove(store: Store, text: str, today: date, now: datetime) -> Reply:
    if not text:
        raise UserError("请写上要删除的日期。", example=REMOVE_EXAMPLE)
    first, last, name = read_range(text, today, REMOVE_EXAMPLE)
    if name:
        raise UserError("删除时只写日期（或日期范围）。", example=REMOVE_EXAMPLE)
    removed = await remove_days(store, store.org.id, first, last, now)
    if not removed:
        raise UserError(f"{_span(first, last)} 没有录入的假期或调休。发送「设置 假期」查看已录入的日子。")
    lines = [f"✅ 已删除 {len(removed)} 天的录入{_ORG_WIDE}："]
    lines += [f"· {line}" for line in _runs(removed)]
    lines.append("这些天重新按节假日库（或周一到周五）安排。")
    return Reply("\n".join(lines))


async def listing(store: Store, today: date) -> str:
    """The organisation's entries by year, consecutive days of one kind and name on one line."""
    entries = await org_days(store, store.org.id, start=date(today.year - 1, 1, 1))
    lines: list[str] = []
    if not entries:
        lines.append(f"📅 本企业还没有录入假期或调休{_ORG_WIDE}。")
        lines.append(f"录入：{HOLIDAY_EXAMPLE}；{WORKDAY_EXAMPLE}")
    else:
        lines.append(f"📅 本企业录入的假期和调休{_ORG_WIDE}，优先于节假日库：")
        for year in sorted({e.day.year for e in entries}):
            lines.append(f"{year} 年：")
            lines += [f"· {line}" for line in _runs([e for e in entries if e.day.year == year])]
        lines.append(f"删除录错的日子：{REMOVE_EXAMPLE}")
    for year in missing_years(today):
        if not any(e.day.year == year for e in entries):
            lines.append("")
            lines.append(missing_year_text(year))
    return "\n".join(lines)


def _runs(entries: Sequence[CalendarDay]) -> list[str]:
    """Consecutive days with the same kind, name and source folded into one line."""
    runs: list[list[CalendarDay]] = []
    for entry in sorted(entries, key=lambda e: e.day):
        last = runs[-1][-1] if runs else None
        if (
            last is not None
            and last.day + timedelta(days=1) == entry.day
            and (last.kind, last.name, last.source) == (entry.kind, entry.name, entry.source)
        ):
            runs[-1].append(entry)
        else:
            runs.append([entry])
    lines = []
    for run in runs:
        first, last = run[0], run[-1]
        name = f" {first.name}" if first.name else ""
        lines.append(f"{KIND_NAMES[first.kind]} {_span(first.day, last.day)}{name} · {SOURCE_NAMES[first.source]}")
    return lines
