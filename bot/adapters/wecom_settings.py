"""设置 推送 <群机器人地址>: send this team's group pushes through a WeCom group robot's webhook.

The parsing is shared with `salesbot team set-webhook`. Plain parsing and store calls: importing this
module loads no HTTP client and no wechatpy, so the application offers the row on every platform (the
console too), whether WeCom is configured or not.
"""

from __future__ import annotations

import re
from datetime import datetime

from bot.masking import mask_secret
from handlers.commands import Args, SettingSet, UserError
from storage.store import Store
from storage.team_settings import WECOM_WEBHOOK_BROKEN, WECOM_WEBHOOK_KEY, webhook_key

settings = SettingSet()

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
    is_webhook = parts.scheme in ("http", "https") and parts.path.endswith("/cgi-bin/webhook/send")
    if not is_webhook or not _WEBHOOK_KEY.match(key):
        raise UserError(
            "这不是企业微信群机器人的 Webhook 地址。请在群设置 → 消息推送（群机器人）里复制完整地址。",
            example=PUSH_USAGE,
        )
    return key


def _describe_push(store: Store) -> str:
    key = webhook_key(store.team.settings)
    return f"群推送（企业微信群机器人）：{'已设置 ' + mask_secret(key) if key else '未设置'}"


async def set_team_webhook(store: Store, key: str, now: datetime) -> None:
    """A new webhook replaces the old one and lifts any broken mark (chat and `salesbot team`)."""
    await store.update_team_settings({WECOM_WEBHOOK_KEY: key, WECOM_WEBHOOK_BROKEN: None}, now)


@settings.row("推送", role="admin", usage=PUSH_USAGE, describe=_describe_push)
async def _set_push(args: Args, value: str, store: Store, now: datetime) -> str:
    key = webhook_key_from(args.raw.partition(" ")[2] or value)
    await set_team_webhook(store, key, now)
    return f"本组的群推送已设为机器人 {mask_secret(key)}。站会提醒、日报和求助公告会发到这个群。"
