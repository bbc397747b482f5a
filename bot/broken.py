"""Broken group pushes: mark the destination broken (durably, for every replica) and tell admins once.

A team's group push is the WeCom group-robot webhook (`设置 推送`) or the DingTalk custom robot
(`设置 钉钉机器人`). When the platform says it can never work as configured — WeCom 93000/93004/93008,
DingTalk 310000 (sign / keyword / timestamp / IP) or 400013/400101/400102/400106 — the deliverer raises
`PermanentFailure(destination_broken=True, category=…)` and the outbox worker calls `BrokenPushes.mark`:

* the mark is written to the team's settings (`wecom_webhook_broken` / `dingtalk_robot_broken`), audit-
  logged, holding a *fingerprint* of the credential that failed — never the key or secret itself. A mark
  for a key the team no longer uses is therefore inert, and a race with an admin who has just set a new
  webhook cannot break the new one;
* in the same transaction ONE notice is queued to the team's leads and the org's admins, deduplicated by
  (team, push, episode). The episode counter grows only when a mark is newly set, so a second failure in
  the same episode (another row, another replica) says nothing, and a break after a fix notifies again;
* later rows to a marked push fail at once with a clear `last_error` — no platform call — until an admin
  sets a new webhook/robot (`设置 推送 …`, `设置 钉钉机器人 …`, `salesbot team set-webhook`), or the
  operator runs `salesbot outbox retry --failed`, which vouches that the push was fixed outside the bot
  (keywords changed, robot re-enabled), clears every mark and resends.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.delivery import OutgoingMessage, PermanentFailure
from storage.admins import admin_ids_for
from storage.database import Database
from storage.push_marks import lock_team, org_admins, organisations_on, teams_with_any_setting
from storage.team_settings import (
    DINGTALK_ROBOT_BROKEN,
    PUSH_BROKEN_EPISODES,
    WECOM_WEBHOOK_BROKEN,
    dingtalk_robot,
    webhook_key,
)

log = logging.getLogger("salesbot.broken")

WECOM_WEBHOOK = "wecom_webhook"
DINGTALK_ROBOT = "dingtalk_robot"
MARK_SETTING = {WECOM_WEBHOOK: WECOM_WEBHOOK_BROKEN, DINGTALK_ROBOT: DINGTALK_ROBOT_BROKEN}

# ------------------------------------------------------------------ wording (all admin-facing text here)
PUSH_NAME = {WECOM_WEBHOOK: "企业微信群机器人（群推送）", DINGTALK_ROBOT: "钉钉自定义机器人（群推送）"}
FIX = {
    WECOM_WEBHOOK: (
        "请在群设置 → 消息推送（群机器人）里重新添加机器人，复制新的 Webhook 地址，然后在群里发送：\n"
        "设置 推送 <新地址>"
    ),
    DINGTALK_ROBOT: (
        "请在钉钉群设置 → 机器人 里检查这个自定义机器人（安全设置：加签 / 关键词 / IP 白名单），"
        "必要时重新添加并复制 Webhook 地址和加签密钥，然后在群里发送：\n"
        "设置 钉钉机器人 <地址> <SEC密钥>"
    ),
}
FIX_COMMAND = {WECOM_WEBHOOK: "设置 推送 <新地址>", DINGTALK_ROBOT: "设置 钉钉机器人 <地址> <SEC密钥>"}
NOTICE_TITLE = "群推送已停用"


def notice_text(team_name: str, push: str, category: str) -> str:
    """The one notice of an episode. Names the team, the category and the exact fix; no key, no secret."""
    return (
        f"⚠️ 「{team_name}」的{PUSH_NAME[push]}发不出去了：{category}。\n"
        "在修好之前，发往这个群的站会提醒、日报和公告都会直接标记为失败，不再尝试发送。\n"
        f"{FIX[push]}\n"
        "设置好后推送立即恢复；之前失败的消息可请运维执行 salesbot outbox retry --failed 重发。"
    )


def blocked_error(push: str, mark: dict[str, Any]) -> str:
    """`last_error` of a row failed fast because its push is marked broken."""
    return (
        f"destination broken since {mark.get('since', '?')}: {mark.get('category', '')}; "
        f"not sent — waiting for an admin to run `{FIX_COMMAND[push]}` (or salesbot outbox retry --failed)"
    )


# ------------------------------------------------------------------ identity of a push
def fingerprint(secret: str) -> str:
    """A stable, non-secret name of a webhook key / robot URL: tells credentials apart, reveals nothing."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Push:
    """One team's group push as configured at some moment: which kind, and which credential."""

    name: str
    fingerprint: str


def push_of(platform: str, destination: dict[str, Any], settings: dict[str, Any]) -> Push | None:
    """The team push a destination goes through, or None (direct messages, reply URLs, app robot)."""
    kind = destination.get("kind")
    if platform == "wecom":
        key = destination.get("key") if kind == "webhook" else webhook_key(settings) if kind == "team" else None
        return Push(WECOM_WEBHOOK, fingerprint(str(key))) if key else None
    if platform == "dingtalk" and kind == "team":
        robot = destination.get("custom_robot") or dingtalk_robot(settings)
        if isinstance(robot, dict) and robot.get("webhook"):
            return Push(DINGTALK_ROBOT, fingerprint(str(robot["webhook"])))
    return None


def configured_push(platform: str, settings: dict[str, Any]) -> Push | None:
    """The push the team uses right now (settings only)."""
    return push_of(platform, {"kind": "team"}, settings)


def blocked_reason(platform: str, destination: dict[str, Any], settings: dict[str, Any]) -> str | None:
    """Why this row must not be sent, if it goes through a push marked broken for the same credential."""
    push = push_of(platform, destination, settings)
    if push is None:
        return None
    mark = settings.get(MARK_SETTING[push.name])
    if isinstance(mark, dict) and mark.get("fingerprint") == push.fingerprint:
        return blocked_error(push.name, mark)
    return None


def member_destination(platform: str, user_ids: list[str], corp_key: str | None = None) -> dict[str, Any]:
    """A direct message to `user_ids`; on WeCom it names the corp, whose app must send it (user ids are
    only unique within a corp)."""
    destination: dict[str, Any] = {"kind": "member", "user_ids": user_ids}
    if platform == "wecom" and corp_key:
        destination["corp_id"] = corp_key
    return destination


def member_dest_key(platform: str, user_ids: list[str], corp_key: str | None = None) -> str:
    """The adapters' own dest_key for a direct message, so a notice orders with other direct messages."""
    if platform == "dingtalk":
        from bot.adapters.dingtalk_send import dest_key as dingtalk_dest_key

        return dingtalk_dest_key({"kind": "member", "user_ids": user_ids})
    from bot.adapters.wecom_send import dest_key as wecom_dest_key

    return wecom_dest_key(member_destination(platform, user_ids, corp_key))


# ------------------------------------------------------------------ marking
class BrokenPushes:
    """What the outbox worker uses to check, set and announce broken marks. Stateless but for config."""

    def __init__(self, db: Database, admin_ids: Iterable[str] = ()) -> None:
        self.db = db
        self.admin_ids = tuple(admin_ids)

    async def mark(
        self, team_id: int, platform: str, destination: dict[str, Any], err: PermanentFailure, now: datetime
    ) -> dict[str, Any] | None:
        """Mark the team's push broken and queue the admins' notice, once per episode.

        Returns the team's settings after the call (for fail-fast checks of the rest of the batch), or None
        when the failure is not about the team's current push — e.g. the admin already replaced the key —
        so the caller falls back to its in-process handling.
        """
        async with self.db.transaction() as store:
            found = await lock_team(store, team_id)
            if found is None:
                return None
            org, team = found
            settings = dict(team.settings or {})
            push = push_of(platform, destination, settings)
            if push is None or configured_push(platform, settings) != push:
                return None
            mark_key = MARK_SETTING[push.name]
            current = settings.get(mark_key)
            if isinstance(current, dict) and current.get("fingerprint") == push.fingerprint:
                return settings  # this episode is known (another row or replica got here first)
            episode = int(settings.get(PUSH_BROKEN_EPISODES) or 0) + 1
            category = err.category or "平台拒绝了这个机器人"
            mark = {"fingerprint": push.fingerprint, "category": category, "since": now.isoformat(),
                    "reason": err.reason[:300], "episode": episode}
            store.bind_team(org, team)
            await store.update_team_settings({mark_key: mark, PUSH_BROKEN_EPISODES: episode}, now)
            recipients = [m.user_id for m in await store.team_leads()]
            admin_ids = admin_ids_for(self.admin_ids, org.corp_key)
            recipients += [m.user_id for m in await org_admins(store, org.id, admin_ids)]
            if await organisations_on(store, platform) == 1:
                # Configured admins who never wrote to the bot are told too — when the platform has one
                # organisation. With several (WeCom corps, DingTalk tenants) a bare id may name someone
                # else in another one, so only this organisation's members count.
                recipients += sorted(admin_ids)
            user_ids = list(dict.fromkeys(u for u in recipients if u))
            log.warning("outbox: team %d %s marked broken (episode %d): %s", team.id, push.name, episode, category)
            if not user_ids:
                log.warning(
                    "outbox: team %d push broken but no lead or admin is known to tell;"
                    " set 设置 主管 or SALESBOT_ADMINS",
                    team.id,
                )
                return dict(team.settings or {})
            body = OutgoingMessage(text=notice_text(team.name, push.name, category), title=NOTICE_TITLE)
            await store.enqueue(
                platform=platform,
                destination=member_destination(platform, user_ids, org.corp_key),
                dest_key=member_dest_key(platform, user_ids, org.corp_key),
                body=body.to_json(),
                now=now,
                dedup_key=f"push-broken:{platform}:{team.id}:{push.name}:{episode}",
            )
            return dict(team.settings or {})


async def clear_all_marks(db: Database, now: datetime) -> int:
    """`salesbot outbox retry --failed`: the operator says the pushes were fixed; clear every mark (audited)."""
    cleared = 0
    async with db.transaction() as store:
        for org, team in await teams_with_any_setting(store, MARK_SETTING.values()):
            store.bind_team(org, team)
            settings = team.settings or {}
            await store.update_team_settings({k: None for k in MARK_SETTING.values() if settings.get(k)}, now)
            cleared += 1
    return cleared
