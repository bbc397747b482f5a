"""WeCom group-robot webhook (消息推送/群机器人) as an outbox `Deliverer` — PLATFORMS.md §2a.

Destination: `{"kind": "webhook", "key": "<webhook key>"}`. The key is the robot's only credential, so
it never appears in logs, errors or `dest_key` (see `webhook_dest_key`): whoever reads the outbox status
must not be able to post into the group.

WeCom answers HTTP 200 with an `errcode` for errors too; we classify by errcode, never by errmsg.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any

import aiohttp

from bot.adapters.common import platform_request
from bot.delivery import OutgoingMessage, PermanentFailure, RateLimit, RetryLater
from bot.masking import mask_secret
from bot.messages import render_mentions

log = logging.getLogger("salesbot.wecom.webhook")

MARKDOWN_MAX_BYTES = 4096
IMAGE_MAX_BYTES = 2 * 1024 * 1024  # the raw picture, before base64 (PLATFORMS.md §2a)
ERR_BUSY = -1  # system busy — transient
ERR_FREQ_LIMIT = 45009  # 20 messages / minute / robot exceeded
BROKEN_DESTINATION = {
    93000: "invalid webhook url (robot removed from the group?)",
    93004: "robot disabled",
    93008: "robot not in the group",
}
# What the admins are told (bot.broken): the category of the break, in their words.
BROKEN_CATEGORY = {
    93000: "Webhook 地址无效或已被删除",
    93004: "群机器人已被停用",
    93008: "群机器人已不在群里",
}
WEBHOOK_RATE_LIMIT = RateLimit(count=20, per_seconds=60.0)


def webhook_dest_key(key: str) -> str:
    """A stable, non-secret identity of one robot for ordering and rate limiting."""
    return "wecom:webhook:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def webhook_destination(key: str) -> dict[str, Any]:
    return {"kind": "webhook", "key": key}


def render_markdown(message: OutgoingMessage) -> str:
    """WeCom markdown already mentions with `<@userid>`, our neutral marker; only the title is added."""
    text = render_mentions(message.text, lambda uid: f"<@{uid}>")
    return f"**{message.title}**\n{text}" if message.title else text


def markdown_payload(message: OutgoingMessage) -> dict[str, Any]:
    content = render_markdown(message)
    size = len(content.encode("utf-8"))
    if size > MARKDOWN_MAX_BYTES:
        raise PermanentFailure(f"message too long after splitting: {size} > {MARKDOWN_MAX_BYTES} bytes")
    return {"msgtype": "markdown", "markdown": {"content": content}}


def image_payload(message: OutgoingMessage) -> dict[str, Any]:
    """A picture message: the PNG/JPG as base64 with the md5 of its raw bytes, at most 2 MB raw."""
    assert message.image is not None
    png = message.image.png
    if png is None:  # the outbox draws a picture before it hands it over (bot.charts.ready_to_send)
        raise PermanentFailure(f"picture {message.image.image_id} was not drawn")
    if len(png) > IMAGE_MAX_BYTES:
        raise PermanentFailure(f"picture too large: {len(png)} > {IMAGE_MAX_BYTES} bytes")
    md5 = hashlib.md5(png, usedforsecurity=False).hexdigest()
    return {"msgtype": "image", "image": {"base64": base64.b64encode(png).decode("ascii"), "md5": md5}}


class WeComWebhookDeliverer:
    """Posts markdown to a group robot; classifies WeCom's answers into delivered / retry / permanent."""

    platform = "wecom"

    def __init__(
        self, session: aiohttp.ClientSession, api_base: str = "https://qyapi.weixin.qq.com", timeout: float = 10.0
    ) -> None:
        self.session = session
        self.api_base = api_base.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    def limit_key(self, destination: dict[str, Any]) -> str:
        return webhook_dest_key(self._key(destination))

    def rate_limit(self, destination: dict[str, Any]) -> RateLimit | None:
        return WEBHOOK_RATE_LIMIT

    def max_bytes(self, destination: dict[str, Any]) -> int:
        return MARKDOWN_MAX_BYTES

    def _key(self, destination: dict[str, Any]) -> str:
        key = destination.get("key")
        if destination.get("kind") != "webhook" or not isinstance(key, str) or not key:
            raise PermanentFailure("not a WeCom webhook destination", destination_broken=True)
        return key

    async def deliver(self, destination: dict[str, Any], message: OutgoingMessage) -> None:
        key = self._key(destination)
        masked = mask_secret(key)  # enough to tell robots apart in a log, useless to an attacker
        payload = image_payload(message) if message.image is not None else markdown_payload(message)
        url = f"{self.api_base}/cgi-bin/webhook/send"
        try:
            # A redirect is refused (permanent, `RedirectRefused`): following it would hand the key to its host.
            async with platform_request(self.session, "POST", url, what=f"webhook {masked}", params={"key": key},
                                        json=payload, timeout=self.timeout) as resp:
                if resp.status == 429 or resp.status >= 500:
                    raise RetryLater(f"webhook {masked}: HTTP {resp.status}")
                if resp.status >= 400:
                    raise PermanentFailure(f"webhook {masked}: HTTP {resp.status}")
                data = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as err:
            # ClientError's text can contain the URL, and with it the key: report only the type.
            raise RetryLater(f"webhook {masked}: {type(err).__name__}") from None
        errcode = int(data.get("errcode", -1)) if isinstance(data, dict) else -1
        if errcode == 0:
            return
        errmsg = str(data.get("errmsg", "")).split(",")[0][:200] if isinstance(data, dict) else ""
        reason = f"webhook {masked}: errcode {errcode} {errmsg}".strip()
        if errcode == ERR_FREQ_LIMIT:
            raise RetryLater(reason, after=60.0)
        if errcode == ERR_BUSY:
            raise RetryLater(reason)
        if errcode in BROKEN_DESTINATION:
            raise PermanentFailure(
                f"{reason} ({BROKEN_DESTINATION[errcode]})", destination_broken=True, category=BROKEN_CATEGORY[errcode]
            )
        raise PermanentFailure(reason)
