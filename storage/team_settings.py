"""The keys of a team's JSON settings (`teams.settings`) that more than one room reads, and typed
accessors for them.

Admins write them (`设置`), adapters and the outbox read them at send time, the outbox marks a push
broken next to the credential it is about. One spelling here keeps those rooms agreeing. The schedule
settings (`standup_time`, `digest_time`, …) with their defaults belong to schedules.jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The WeCom group robot's webhook key (`设置 推送`) and the outbox's "this key is broken" mark.
WECOM_WEBHOOK_KEY = "wecom_webhook_key"
WECOM_WEBHOOK_BROKEN = "wecom_webhook_broken"
# The DingTalk custom robot ({"webhook": url, "secret": SEC…}, `设置 钉钉机器人`) and its broken mark.
DINGTALK_ROBOT = "dingtalk_robot"
DINGTALK_ROBOT_BROKEN = "dingtalk_robot_broken"
# How many broken-push episodes the team has had (numbers the admins' notices, one per episode).
PUSH_BROKEN_EPISODES = "push_broken_episodes"


def webhook_key(settings: Mapping[str, Any] | None) -> str | None:
    """The team's WeCom group webhook key, or None when none is set."""
    key = (settings or {}).get(WECOM_WEBHOOK_KEY)
    return str(key) if key else None


def dingtalk_robot(settings: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The team's DingTalk custom robot, or None unless one with a webhook is set."""
    robot = (settings or {}).get(DINGTALK_ROBOT)
    return robot if isinstance(robot, dict) and robot.get("webhook") else None

# How many days a new board link (`看板 链接`) stays valid (`设置 看板有效期 7天`).
BOARD_LINK_DAYS = "board_link_days"


def board_link_days(settings: Mapping[str, Any] | None, default: int) -> int:
    """The team's board-link validity in days, or `default` when unset or unreadable."""
    days = (settings or {}).get(BOARD_LINK_DAYS)
    return days if isinstance(days, int) and days > 0 else default


# The team's board-link generation: `看板 链接 撤销` bumps it, and links of an older one stop working.
BOARD_LINK_GENERATION = "board_link_generation"


def board_link_generation(settings: Mapping[str, Any] | None) -> int:
    generation = (settings or {}).get(BOARD_LINK_GENERATION)
    return generation if isinstance(generation, int) else 0


# Win rates per open stage for the month's forecast ({stage: percent}, `设置 赢率 报价 50%`).
WIN_RATES = "win_rates"
# Defaults: the share of deals at each stage that a B2B team typically closes, rising as the buyer
# commits — an unqualified lead rarely, a deal in negotiation most of the time.
DEFAULT_WIN_RATES: dict[str, int] = {"线索": 10, "初访": 20, "需求确认": 40, "报价": 60, "谈判": 80}


def win_rates(settings: Mapping[str, Any] | None) -> dict[str, int]:
    """The team's win rate per open stage in percent: its own where set, the default elsewhere."""
    own = (settings or {}).get(WIN_RATES)
    rates = dict(DEFAULT_WIN_RATES)
    if isinstance(own, dict):
        rates.update({s: int(p) for s, p in own.items() if s in rates and isinstance(p, int) and 0 <= p <= 100})
    return rates
