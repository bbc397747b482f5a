"""Team settings and roles: 设置 <项目> <值>.

Each setting declares who may change it and how its value is read, so a new area (schedules, pushes)
adds a row to `SETTINGS` instead of a new command word.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from bot.messages import IncomingMessage, Reply
from handlers.commands import ROLE_RANK, Args, CommandSet, RoleName, UserError, role_refusal
from handlers.common import names_of, who
from storage.store import Store
from storage.team_settings import WECOM_WEBHOOK_BROKEN, WECOM_WEBHOOK_KEY, webhook_key

commands = CommandSet("管理")

SettingApply = Callable[[Args, str, Store, datetime], Awaitable[str]]


@dataclass(frozen=True)
class SettingSpec:
    name: str
    role: RoleName
    usage: str
    describe: Callable[[Store], str]
    apply: SettingApply


SETTINGS: dict[str, SettingSpec] = {}


def setting(name: str, *, role: RoleName, usage: str, describe: Callable[[Store], str]) -> Callable[[SettingApply], SettingApply]:
    def register(apply: SettingApply) -> SettingApply:
        SETTINGS[name] = SettingSpec(name, role, usage, describe, apply)
        return apply

    return register


def _count(value: str, unit: str, usage: str, *, allow_off: bool = False) -> int | None:
    value = value.strip()
    if allow_off and value in ("不限", "关闭", "无", "0"):
        return None
    found = re.fullmatch(rf"(\d{{1,5}})\s*(?:{unit})?", value)
    if not found:
        raise UserError(f"「{value}」不是有效的数字。", example=usage)
    return int(found.group(1))


@setting("主管", role="admin", usage="设置 主管 @成员", describe=lambda s: "")
async def _set_lead(args: Args, value: str, store: Store, now: datetime) -> str:
    if not args.mentions:
        raise UserError("请 @ 要设为主管的成员。", example="设置 主管 @张三")
    for member in args.mentions:
        await store.set_team_role(member, "lead", now)
    return "、".join(who(m) for m in args.mentions) + " 已成为本组主管，可以转交、释放本组任何客户，并接收日报。"


ROLE_WORDS = {"rep": "rep", "成员": "rep", "普通成员": "rep", "lead": "lead", "主管": "lead"}


@commands.command(
    "设置 主管",
    "/role",
    summary="设定或取消本组主管",
    usage="设置 主管 @成员（/role @成员 [lead|rep]）",
    example="/role @王五",
    role="admin",
    extra_words=("设置主管",),
    takes_mentions=True,
)
async def set_role(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    """管理员把 @ 到的成员设为主管；`/role @成员 rep` 取消主管身份。

    Its own command (not only a `设置` row) so the `/role` alias works; the words `设置 主管` and
    `设置主管` are longer than `设置`, so the router picks this command for them and the behaviour
    stays the one admins already know.
    """
    wanted = args.words[0].lower() if args.words else "lead"
    role = ROLE_WORDS.get(wanted)
    if role is None:
        raise UserError(f"「{args.words[0]}」不是可用的身份，只能是 lead（主管）或 rep（成员）。", example="/role @王五 rep")
    apply = _set_lead if role == "lead" else _set_rep
    text = await apply(args, "", store, now)
    return Reply("✅ " + text, names=names_of(*args.mentions))


@setting("成员", role="admin", usage="设置 成员 @成员", describe=lambda s: "")
async def _set_rep(args: Args, value: str, store: Store, now: datetime) -> str:
    if not args.mentions:
        raise UserError("请 @ 要取消主管身份的成员。", example="设置 成员 @张三")
    for member in args.mentions:
        await store.set_team_role(member, "rep", now)
    return "、".join(who(m) for m in args.mentions) + " 现在是普通成员。"


@setting(
    "上限",
    role="admin",
    usage="设置 上限 50",
    describe=lambda s: f"每人跟进中客户上限：{s.team.max_active_customers} 个",
)
async def _set_cap(args: Args, value: str, store: Store, now: datetime) -> str:
    cap = _count(value, "个", "设置 上限 50")
    if cap is None or not 1 <= cap <= 10000:
        raise UserError("上限要在 1 到 10000 之间。", example="设置 上限 50")
    await store.update_team_settings({"max_active_customers": cap}, now)
    return f"每人跟进中客户上限已设为 {cap} 个（赢单、输单的客户不计入）。"


@setting(
    "每日认领",
    role="admin",
    usage="设置 每日认领 5（或 不限）",
    describe=lambda s: f"每日认领上限：{s.team.daily_claim_limit or '不限'}",
)
async def _set_daily(args: Args, value: str, store: Store, now: datetime) -> str:
    limit = _count(value, "个", "设置 每日认领 5", allow_off=True)
    await store.update_team_settings({"daily_claim_limit": limit}, now)
    return f"每日认领上限已设为 {limit} 个。" if limit else "已取消每日认领上限。"


@setting(
    "冷却",
    role="admin",
    usage="设置 冷却 7天",
    describe=lambda s: f"释放后再认领冷却期：{s.team.cooldown_days} 天",
)
async def _set_cooldown(args: Args, value: str, store: Store, now: datetime) -> str:
    days = _count(value, "天", "设置 冷却 7天", allow_off=True) or 0
    if days > 365:
        raise UserError("冷却期最多 365 天。", example="设置 冷却 7天")
    await store.update_team_settings({"cooldown_days": days}, now)
    return f"冷却期已设为 {days} 天。" if days else "已取消冷却期。"


TIMEZONE_ALIASES = {"北京": "Asia/Shanghai", "上海": "Asia/Shanghai", "中国": "Asia/Shanghai", "香港": "Asia/Hong_Kong", "台北": "Asia/Taipei", "新加坡": "Asia/Singapore", "东京": "Asia/Tokyo"}


@setting(
    "时区",
    role="admin",
    usage="设置 时区 Asia/Shanghai",
    describe=lambda s: f"时区（整个企业）：{s.org.timezone}",
)
async def _set_timezone(args: Args, value: str, store: Store, now: datetime) -> str:
    """Every "today", stand-up time and digest of the organisation follows this zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = TIMEZONE_ALIASES.get(value, value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"不认识时区「{value}」。请用 IANA 时区名。", example="设置 时区 Asia/Shanghai") from None
    before = await store.set_org_timezone(name, now)
    return f"企业时区已从 {before} 改为 {name}，晨会、日报等推送时间按新时区计算。"


_WEBHOOK_KEY = re.compile(r"^[A-Za-z0-9-]{8,128}$")
PUSH_USAGE = "设置 推送 https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…"


def webhook_key_from(value: str) -> str:
    """The key of a WeCom group-robot webhook URL (or a bare key)."""
    from urllib.parse import parse_qs, urlsplit

    value = value.strip().strip("<>")
    if _WEBHOOK_KEY.match(value):
        return value
    parts = urlsplit(value)
    key = parse_qs(parts.query).get("key", [""])[0]
    if parts.scheme not in ("http", "https") or not parts.path.endswith("/cgi-bin/webhook/send") or not _WEBHOOK_KEY.match(key):
        raise UserError("这不是企业微信群机器人的 Webhook 地址。请在群设置 → 消息推送（群机器人）里复制完整地址。", example=PUSH_USAGE)
    return key


def mask_key(key: str) -> str:
    return f"{key[:4]}…{key[-4:]}" if len(key) > 10 else "****"


def _describe_push(store: Store) -> str:
    key = webhook_key(store.team.settings)
    return f"群推送（企业微信群机器人）：{'已设置 ' + mask_key(key) if key else '未设置'}"


async def set_team_webhook(store: Store, key: str, now: datetime) -> None:
    """A new webhook replaces the old one and lifts any broken mark (chat and `salesbot team`)."""
    await store.update_team_settings({WECOM_WEBHOOK_KEY: key, WECOM_WEBHOOK_BROKEN: None}, now)


@setting("推送", role="admin", usage=PUSH_USAGE, describe=_describe_push)
async def _set_push(args: Args, value: str, store: Store, now: datetime) -> str:
    key = webhook_key_from(args.raw.partition(" ")[2] or value)
    await set_team_webhook(store, key, now)
    return f"本组的群推送已设为机器人 {mask_key(key)}。站会提醒、日报和求助公告会发到这个群。"


@commands.command(
    "设置",
    "/config",
    summary="查看或修改本组设置",
    usage="设置 [项目] [值]",
    example="设置 上限 50",
    role="rep",
    takes_mentions=True,
)
async def configure(msg: IncomingMessage, args: Args, store: Store, now: datetime) -> Reply:
    """不带参数时列出本组设置；主管/管理员可以修改。"""
    name, _, value = args.text.partition(" ")
    if not name:
        lines = [f"⚙️ 「{store.team.name}」的设置："]
        lines += [f"· {text}" for spec in SETTINGS.values() if (text := spec.describe(store))]
        leads = await store.team_leads()
        lines.append(f"· 主管：{'、'.join(m.name for m in leads) or '未设置'}")
        lines.append("修改示例：" + "；".join(spec.usage for spec in list(SETTINGS.values())[:4]))
        return Reply("\n".join(lines))
    spec = SETTINGS.get(name)
    if spec is None:
        known = "、".join(SETTINGS)
        raise UserError(f"没有「{name}」这项设置。可设置：{known}。", example="设置 上限 50")
    if ROLE_RANK[store.role] < ROLE_RANK[spec.role]:
        raise UserError(role_refusal(f"设置 {name}", spec.role, store.role))
    if not value.strip() and not args.mentions:
        raise UserError(f"请写上「{name}」的新值。", example=spec.usage)
    text = await spec.apply(args, value.strip(), store, now)
    return Reply("✅ " + text, names=names_of(*args.mentions))


# Platform-specific settings register themselves in SETTINGS on import.
from handlers import dingtalk_robot as _dingtalk_robot  # noqa: E402,F401

# Schedule settings (晨会, 总结, 日报, 复盘, 公海, 点名, 日历, 升级) register themselves on import.
from handlers import standup as _standup  # noqa: E402,F401
