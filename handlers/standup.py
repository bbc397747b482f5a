"""Stand-up (晨会), leave (请假/销假), the on-demand retro (复盘) and the schedule settings.

The stand-up answer is accepted all day: the summary at 09:45 shows what was there by then, and a
later answer still counts for participation. A second answer the same day replaces the first.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from bot.messages import IncomingMessage, Reply
from handlers.commands import Args, CommandSet, SettingSet, UserError
from handlers.common import local_today
from handlers.dates import DateError, format_date, parse_date
from handlers.options import BLOCKER
from handlers.periods import current, parse_period
from schedules.calendar import CALENDAR_KINDS
from schedules.holidays import load_days
from schedules.jobs import DEFAULTS, WEEKDAY_NAMES, TeamSchedule
from storage.schedule_store import ScheduleStore
from storage.store import Store

commands = CommandSet("晨会")
settings = SettingSet()  # the schedule rows: 晨会, 总结, 日报, 复盘, 公海, 点名, 日历, 升级

STANDUP_EXAMPLE = "晨会 拜访华为，整理腾讯报价 阻碍:报价审批慢"
AWAY_EXAMPLE = "请假 到 周五"


@commands.command(
    "晨会",
    "/standup",
    summary="回复今天的晨会计划",
    usage="晨会 <今天的计划> [阻碍:<遇到的困难>]",
    example=STANDUP_EXAMPLE,
    options=(BLOCKER,),
    details="写上今天的计划，有困难就加「阻碍:」（或 blocker:）。当天可以随时回复，再发一次会覆盖之前的回复。",
)
async def standup(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    if not args.raw.strip():
        raise UserError("请写上今天的计划。", example=STANDUP_EXAMPLE)
    plan, blockers = args.text, args.options.get("阻碍", "")
    if not plan:
        raise UserError("请写上今天的计划（阻碍写在计划后面）。", example=STANDUP_EXAMPLE)
    if len(plan) > 500 or len(blockers) > 300:
        raise UserError("内容太长了（计划最多 500 字，阻碍最多 300 字）。", example=STANDUP_EXAMPLE)
    ss = ScheduleStore(store)
    today = local_today(store, now)
    replaced = await ss.save_standup_answer(store.actor, today, plan, blockers or None, now)
    verb = "已更新" if replaced else "已记录"
    extra = f"\n🚧 阻碍：{blockers}（会在晨会总结里提醒主管）" if blockers else ""
    return Reply(f"📝 {store.actor.name} 的晨会{verb}：{plan}{extra}")


@commands.command(
    "请假",
    "/away",
    summary="请假，期间不参加晨会",
    usage="请假 [到 <日期>]",
    example=AWAY_EXAMPLE,
    details="从今天开始请假，可写结束日期（含当天）；不写就一直到「销假」为止。请假期间不会被晨会点名。",
)
async def away(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    today = local_today(store, now)
    text = re.sub(r"^(到|至|直到)\s*", "", args.text.strip())
    until: date | None = None
    if text:
        try:
            until = parse_date(text, today)
        except DateError as err:
            raise UserError(str(err), example=AWAY_EXAMPLE) from None
        if until < today:
            raise UserError("结束日期已经过去了。", example=AWAY_EXAMPLE)
    await ScheduleStore(store).start_leave(store.actor, today, until, now)
    span = f"到 {format_date(until, today)}（{until.isoformat()}）" if until else "直到发送「销假」"
    return Reply(f"🏖 {store.actor.name} 请假{span}，期间不参加晨会点名。")


@commands.command("销假", "/back", summary="结束请假", usage="销假", example="销假")
async def back(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    """结束请假，从今天起重新参加晨会。"""
    if not await ScheduleStore(store).end_leave(store.actor, local_today(store, now), now):
        return Reply("你当前没有在请假。")
    return Reply(f"👋 欢迎回来，{store.actor.name}！从今天起恢复晨会。")


RETRO_EXAMPLE = "复盘 上月"


@commands.command(
    "复盘",
    "/retro",
    summary="查看一周或一个月的复盘（本周、上周、本月、上月、10月 …）",
    usage="复盘 [本周|上周|本月|上月|<月份>]",
    example=RETRO_EXAMPLE,
    role="lead",
    details=(
        "周复盘：赢单和输单（逐单列出）、商机按阶段及较周初变化、本月预测、新客户、每人跟进、求助协作、"
        "晨会参与率、沉默客户和逾期。\n"
        "月度协作复盘（本月、上月、10月、2026-10）：同样的数字按月统计，另有每人新客户和协作之星。"
        "已过去的周期显示当时的商机。"
    ),
)
async def retro(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> list[Reply]:
    """A week (the default: this one) or a month; quarters and years are refused with an example."""
    # The retros' builders (and the chart's) load on the first 复盘: a console chat that never asks for one
    # starts without them.
    from handlers.charts import retro_chart
    from schedules.manager_reports import build_month_retro, build_retro

    today = local_today(store, now)
    period = parse_period(args.text.strip(), today, RETRO_EXAMPLE) if args.text.strip() else current("week", today)
    if period.kind not in ("week", "month"):
        raise UserError("复盘按周或按月看：本周、上周、本月、上月、10月。", example=RETRO_EXAMPLE)
    # Participation counts the working days of the organisation's own calendar too (设置 假期).
    schedule = TeamSchedule.of(store.team.settings, store.org.timezone, await load_days(store, store.org.id))
    if period.kind == "month":
        message = await build_month_retro(store, period, schedule, now)
    else:
        message = await build_retro(store, period.start, schedule, now)
    replies = [Reply(message.text, title=message.title, names=message.names)]
    if period.kind == "week":  # the weekly retro carries its chart: this week against the weeks before
        image = await retro_chart(store, period.start, schedule.tz)
        if image is not None:
            replies.append(Reply(image.alt, image=image))
    return replies


# ------------------------------------------------------------------ settings
_TIME = re.compile(r"^(\d{1,2})(?::(\d{2})|点(?:(\d{1,2})分?|(半))?)$")


def _hhmm(value: str, example: str) -> str:
    found = _TIME.match(value.strip())
    if not found:
        raise UserError(f"「{value}」不是有效的时间，请写成 09:00 这样。", example=example)
    hour = int(found.group(1))
    minute = int(found.group(2) or found.group(3) or (30 if found.group(4) else 0))
    if hour > 23 or minute > 59:
        raise UserError(f"「{value}」不是有效的时间。", example=example)
    return f"{hour:02d}:{minute:02d}"


def _sched(store: Store) -> TeamSchedule:
    return TeamSchedule.of(store.team.settings, store.org.timezone)


def _daily_time_setting(name: str, key: str, what: str) -> None:
    example = f"设置 {name} {DEFAULTS[key]}"

    async def apply(args: Args, value: str, store: Store, now: datetime) -> str:
        hhmm = _hhmm(value, example)
        await store.update_team_settings({key: hhmm}, now)
        return f"{what}时间已设为每个工作日 {hhmm}（{store.org.timezone}）。"

    def describe(store: Store) -> str:
        return f"{what}：工作日 {getattr(_sched(store), key):%H:%M}"

    settings.row(name, role="lead", usage=example, describe=describe)(apply)


_daily_time_setting("晨会", "standup_time", "晨会提醒")
_daily_time_setting("总结", "summary_time", "晨会总结")
_daily_time_setting("日报", "digest_time", "主管日报")


@settings.row(
    "复盘",
    role="lead",
    usage="设置 复盘 周五 17:00",
    describe=lambda s: f"每周复盘：{WEEKDAY_NAMES[_sched(s).retro_weekday]} {_sched(s).retro_time:%H:%M}",
)
async def _set_retro(args: Args, value: str, store: Store, now: datetime) -> str:
    example = "设置 复盘 周五 17:00"
    found = re.match(r"^(?:周|星期|礼拜)([一二三四五六日天1-7])\s*(.*)$", value.strip())
    if not found:
        raise UserError("请写上星期几和时间。", example=example)
    day = found.group(1)
    weekday = "一二三四五六".find(day) if day in "一二三四五六" else (6 if day in "日天" else int(day) - 1)
    hhmm = _hhmm(found.group(2) or DEFAULTS["retro_time"], example)
    await store.update_team_settings({"retro_weekday": weekday, "retro_time": hhmm}, now)
    return f"每周复盘已设为{WEEKDAY_NAMES[weekday]} {hhmm}。"


@settings.row(
    "月复盘",
    role="lead",
    usage="设置 月复盘 10:00",
    describe=lambda s: f"月度协作复盘：每月第一个工作日 {_sched(s).month_retro_time:%H:%M}（上月的数字）",
)
async def _set_month_retro(args: Args, value: str, store: Store, now: datetime) -> str:
    hhmm = _hhmm(value, "设置 月复盘 10:00")
    await store.update_team_settings({"month_retro_time": hhmm}, now)
    return f"月度协作复盘已设为每月第一个工作日 {hhmm}（{store.org.timezone}），内容是上个月。"


@settings.row(
    "公海",
    role="lead",
    usage="设置 公海 30天",
    describe=lambda s: f"公海回收：{_sched(s).pool_days} 天无跟进退回公海（提前 3 天提醒）",
)
async def _set_pool(args: Args, value: str, store: Store, now: datetime) -> str:
    found = re.fullmatch(r"(\d{1,3})\s*天?", value.strip())
    if not found or not 4 <= int(found.group(1)) <= 365:
        raise UserError("公海回收天数要在 4 到 365 天之间。", example="设置 公海 30天")
    days = int(found.group(1))
    await store.update_team_settings({"pool_days": days}, now)
    return f"跟进中的客户 {days} 天没有跟进将自动退回公海，提前 3 天提醒负责人。"


_ON = ("开", "开启", "打开", "on", "是")
_OFF = ("关", "关闭", "off", "否")


@settings.row(
    "点名",
    role="lead",
    usage="设置 点名 开",
    describe=lambda s: f"晨会总结 @未回复成员：{'开' if _sched(s).standup_mention else '关'}",
)
async def _set_mention(args: Args, value: str, store: Store, now: datetime) -> str:
    if value.lower() not in _ON + _OFF:
        raise UserError("请写「开」或「关」。", example="设置 点名 开")
    on = value.lower() in _ON
    await store.update_team_settings({"standup_mention": on}, now)
    return "晨会总结会 @ 未回复的成员。" if on else "晨会总结只列出未回复成员的名字，不再 @。"


_CALENDAR_WORDS = {
    "cn": "cn", "中国": "cn", "法定": "cn", "weekdays": "weekdays", "周一到周五": "weekdays", "工作日": "weekdays"
}


@settings.row(
    "日历",
    role="lead",
    usage="设置 日历 cn（或 weekdays）",
    describe=lambda s: "工作日历：" + ("中国法定节假日（含调休）" if _sched(s).calendar == "cn" else "周一到周五"),
)
async def _set_calendar(args: Args, value: str, store: Store, now: datetime) -> str:
    kind = _CALENDAR_WORDS.get(value.lower())
    if kind not in CALENDAR_KINDS:
        raise UserError(
            "日历可选 cn（中国法定节假日，含调休）或 weekdays（周一到周五）。", example="设置 日历 weekdays"
        )
    await store.update_team_settings({"calendar": kind}, now)
    return "工作日历已设为" + ("中国法定节假日（含调休上班日）。" if kind == "cn" else "周一到周五（不看节假日）。")


@settings.row(
    "升级",
    role="lead",
    usage="设置 升级 4小时",
    describe=lambda s: f"求助升级：{_sched(s).escalate_hours:g} 个工作小时无人接则提醒主管",
)
async def _set_escalation(args: Args, value: str, store: Store, now: datetime) -> str:
    found = re.fullmatch(r"(\d{1,2})\s*(?:小时|个小时|h)?", value.strip())
    if not found or not 1 <= int(found.group(1)) <= 72:
        raise UserError("升级时限要在 1 到 72 个工作小时之间。", example="设置 升级 4小时")
    await store.update_team_settings({"escalate_hours": int(found.group(1))}, now)
    return f"求助 {found.group(1)} 个工作小时无人接，会提醒主管。"

