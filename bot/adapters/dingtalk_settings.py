"""设置 钉钉机器人 <webhook地址> <SEC密钥>: send this team's group pushes through a custom robot.

A DingTalk group can have a 自定义机器人 with 加签 security; once set, announcements to the team go
through its webhook instead of the app robot. The secret is stored with the team and never echoed
back in full — replies and the audit log show it masked.

Plain parsing and store calls: importing this module loads no HTTP client and no DingTalk SDK, so the
application offers the row on every platform (the console too), whether DingTalk is configured or not.
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from bot.masking import mask_secret
from handlers.commands import Args, SettingSet, UserError
from storage.store import Store
from storage.team_settings import DINGTALK_ROBOT, DINGTALK_ROBOT_BROKEN

settings = SettingSet()

SETTING_KEY = DINGTALK_ROBOT
BROKEN_KEY = DINGTALK_ROBOT_BROKEN  # set by the outbox (bot.broken); a new robot starts a clean slate
USAGE = "设置 钉钉机器人 https://oapi.dingtalk.com/robot/send?access_token=xxx SECxxxx（或 关闭）"
_SECRET = re.compile(r"^SEC[0-9A-Za-z]{8,128}$")


def masked_webhook(url: str) -> str:
    parts = urlsplit(url)
    token = parse_qs(parts.query).get("access_token", [""])[0]
    return f"{parts.scheme}://{parts.netloc}{parts.path}?access_token={mask_secret(token, 6)}"


def _describe(store: Store) -> str:
    robot = (store.team.settings or {}).get(SETTING_KEY)
    if not robot:
        return ""
    return f"钉钉自定义机器人：{masked_webhook(robot['webhook'])}（加签 {mask_secret(robot.get('secret') or '', 5)}）"


@settings.row("钉钉机器人", role="admin", usage=USAGE, describe=_describe)
async def _set_custom_robot(args: Args, value: str, store: Store, now: datetime) -> str:
    before = (store.team.settings or {}).get(SETTING_KEY)
    if value in ("关闭", "取消", "无"):
        values = dict(store.team.settings or {})
        values.pop(SETTING_KEY, None)
        values.pop(BROKEN_KEY, None)
        store.team.settings = values
        await store.audit("configure", "team", store.team.id, {SETTING_KEY: _masked(before)}, {SETTING_KEY: None}, now)
        return "已停用钉钉自定义机器人，群推送改用应用机器人发送。"
    parts = value.split()
    if len(parts) != 2:
        raise UserError("请写上 webhook 地址和加签密钥（SEC 开头），用空格隔开。", example=USAGE)
    url, secret = parts
    split = urlsplit(url)
    token = parse_qs(split.query).get("access_token", [""])[0]
    if split.scheme not in ("https", "http") or not split.path.endswith("/robot/send") or not token:
        raise UserError("webhook 地址不对，应形如 https://oapi.dingtalk.com/robot/send?access_token=…", example=USAGE)
    if not _SECRET.match(secret):
        raise UserError("加签密钥应以 SEC 开头（机器人安全设置 → 加签）。", example=USAGE)
    robot = {"webhook": f"{split.scheme}://{split.netloc}{split.path}?access_token={token}", "secret": secret}
    values = dict(store.team.settings or {})
    values[SETTING_KEY] = robot
    values.pop(BROKEN_KEY, None)
    store.team.settings = values
    await store.audit(
        "configure", "team", store.team.id, {SETTING_KEY: _masked(before)}, {SETTING_KEY: _masked(robot)}, now
    )
    shown = f"{masked_webhook(robot['webhook'])}（加签 {mask_secret(secret, 5)}）"
    return f"本组群推送将通过钉钉自定义机器人发送：{shown}。"


def _masked(robot: dict[str, str] | None) -> dict[str, str] | None:
    if not robot:
        return None
    return {"webhook": masked_webhook(robot["webhook"]), "secret": mask_secret(robot.get("secret") or "", 5)}
