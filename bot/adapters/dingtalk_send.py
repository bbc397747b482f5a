"""DingTalk (钉钉) sending: render neutral messages as DingTalk markdown, queue replies, deliver outbox rows.

Nothing is answered inline on DingTalk: the reply sink writes every reply to the outbox inside the
command's transaction, addressed to the message's sessionWebhook (valid ~90 min) with the group API
(or the 1:1 API for single chats) as the fallback once it has expired. `DingTalkDeliverer` sends rows
(PLATFORMS.md §4): session webhooks, the team's custom robot (加签), the group and 1:1 robot APIs and
work notifications, classifying DingTalk's error codes into retry / permanent / destination broken.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from bot.adapters.common import enqueue_split, platform_request, with_fresh_token
from bot.adapters.tokens import TokenCache
from bot.delivery import OutgoingMessage, PermanentFailure, RateLimit, RetryLater
from bot.messages import IncomingMessage, Reply, render_mentions
from bot.settings import Settings
from storage.team_settings import dingtalk_robot

if TYPE_CHECKING:
    from storage.database import Database
    from storage.store import Store

PLATFORM = "dingtalk"
SESSION_WEBHOOK_MARGIN_MS = 60_000  # don't start a post to a webhook that lapses mid-flight
ROBOT_RATE = RateLimit(20, 60.0)  # 20 messages a minute per robot, then blocked 10 min (§4a)
BLOCKED_SECONDS = 600.0
ROBOT_MAX_BYTES = 4000  # robot markdown: no documented cap; stay well under msgParam's 15 000 bytes
WORK_NOTICE_MAX_BYTES = 2000  # work notification msg ≤ 2048 bytes [M]
OTO_MAX_USERS = 20
WORK_MAX_USERS = 100
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)

# Legacy host errcodes (HTTP 200 + errcode), §4a/§4c.
RATE_LIMITED = {410100, 130101}
QPM_LIMITED = {143103, 143104, 90018}
DESTINATION_GONE = {400013: "群已解散", 400101: "机器人 access_token 不存在", 400102: "机器人已停用",
                    400106: "机器人不存在", 300005: "机器人 access_token 不存在"}
TOKEN_INVALID = {"33001", "40001", "40014", "42001", "40000", "41001"}
SESSION_GONE = 300001
# New-API error codes that name a destination which no longer works.
API_DESTINATION_GONE = ("group.disbanded", "bot.stopped", "robotCode", "openConversationId", "robot.notExist")


# ---------------------------------------------------------------------------------------------- signing
def sign(secret: str, timestamp: int | str) -> str:
    """base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")) — robot callbacks and 加签 webhooks."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


# ---------------------------------------------------------------------------------------------- rendering
@dataclass(frozen=True)
class Rendered:
    title: str
    text: str
    at_user_ids: list[str]


def render(message: OutgoingMessage) -> Rendered:
    """DingTalk markdown (§4a): `<@id>` → `@id` in the text plus `at.atUserIds`; a notification title."""
    ids = message.mention_ids
    text = render_mentions(message.text, lambda uid: f"@{uid}")
    return Rendered(title=message.title or _first_line(message), text=text, at_user_ids=ids)


def _first_line(message: OutgoingMessage) -> str:
    plain = render_mentions(message.text, lambda uid: f"@{message.names.get(uid, uid)}")
    line = next((ln.strip() for ln in plain.splitlines() if ln.strip()), "消息")
    line = line.lstrip("#>*- ").strip() or "消息"
    return line[:20] + ("…" if len(line) > 20 else "")


def picture_markdown(message: OutgoingMessage, public_url: str | None) -> OutgoingMessage | None:
    """A picture as DingTalk shows one: markdown linking to our `/charts/<id>.png` (DingTalk robots take no
    image bytes). None without `SALESBOT_PUBLIC_URL`: nothing outside can fetch it."""
    if message.image is None or not public_url:
        return None
    alt = message.image.alt
    url = f"{public_url.rstrip('/')}/charts/{message.image.image_id}.png"
    return OutgoingMessage(text=f"![{alt}]({url})", title=message.title or alt)


def robot_markdown_body(message: OutgoingMessage) -> dict[str, Any]:
    """Body for sessionWebhook and custom robot webhooks."""
    r = render(message)
    return {"msgtype": "markdown", "markdown": {"title": r.title, "text": r.text},
            "at": {"atUserIds": r.at_user_ids, "isAtAll": False}}


# ---------------------------------------------------------------------------------------------- enqueue
def chat_destination(msg: IncomingMessage) -> dict[str, Any]:
    """Where a reply to `msg` goes: its sessionWebhook, falling back to the group or 1:1 API."""
    ctx = msg.reply_context
    fallback = (
        {"kind": "member", "user_ids": [msg.user_id]}
        if ctx.get("conversation_type") == "1"
        else {"kind": "team", "chat_id": msg.chat_id}
    )
    if ctx.get("session_webhook"):
        return {"kind": "session_webhook", "url": ctx["session_webhook"], "expires_at": ctx.get("expires_at", 0),
                "chat_id": msg.chat_id, "fallback": fallback}
    return fallback


def dest_key(destination: dict[str, Any]) -> str:
    """Rows with one key are sent in order: everything for one conversation shares a key."""
    kind = destination["kind"]
    if kind in ("session_webhook", "team"):
        return f"dingtalk:chat:{destination['chat_id']}"
    return "dingtalk:member:" + ",".join(sorted(destination["user_ids"]))


async def enqueue_reply(store: Store, destination: dict[str, Any], reply_or_message: Reply | OutgoingMessage,
                        now: datetime, max_bytes: int) -> None:
    message = (reply_or_message if isinstance(reply_or_message, OutgoingMessage)
               else OutgoingMessage.from_reply(reply_or_message))
    await enqueue_split(store, PLATFORM, destination, dest_key(destination), message, now, max_bytes,
                        title_on_every_part=True)


def make_reply_sink(max_bytes: Callable[[dict[str, Any]], int]) -> Callable[..., Awaitable[list[Reply]]]:
    """The router's reply sink for DingTalk: every reply becomes an outbox row in the command's transaction."""

    async def sink(store: Store, msg: IncomingMessage, replies: list[Reply], now: datetime) -> list[Reply]:
        for reply in replies:
            if reply.audience == "chat":
                destination = chat_destination(msg)
            elif reply.audience == "team":
                destination = {"kind": "team", "chat_id": store.team.chat_id}
            else:
                destination = {"kind": "member", "user_ids": list(reply.user_ids)}
                if not reply.user_ids:
                    continue
            await enqueue_reply(store, destination, reply, now, max_bytes(destination))
        return []

    return sink


# ---------------------------------------------------------------------------------------------- sending
class DingTalkDeliverer:
    """Sends outbox rows of platform "dingtalk" (the `Deliverer` protocol of bot.delivery).

    Destinations: `session_webhook` (POST to the reply URL, host-checked; group/1:1 API once expired),
    `team` (the team's custom robot when an admin set one, else robot/groupMessages/send with the
    conversation id), `member` (work notification when an agent id is configured, else oToMessages).
    """

    platform = PLATFORM

    def __init__(
        self,
        settings: Settings,
        http: aiohttp.ClientSession,
        *,
        db: Database | None = None,
        wall_clock: Callable[[], float] = time.time,
        token_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.http = http
        self.db = db
        self.wall_clock = wall_clock
        self.robot_code = settings.dingtalk_robot_code or settings.dingtalk_app_key or ""
        self.oapi = settings.dingtalk_oapi_base.rstrip("/")
        self.api = settings.dingtalk_api_base.rstrip("/")
        self._oapi_netloc = urlsplit(self.oapi).netloc.lower()
        self.tokens = TokenCache(self._fetch_token, clock=token_clock, margin=300)

    # ---------------------------------------------------------------- Deliverer protocol
    def limit_key(self, destination: dict[str, Any]) -> str:
        kind = destination.get("kind")
        if kind == "member":
            return f"dingtalk:work:{self.settings.dingtalk_agent_id or self.robot_code}"
        return f"dingtalk:robot:{self.robot_code}:{destination.get('chat_id', '')}"

    def rate_limit(self, destination: dict[str, Any]) -> RateLimit | None:
        return None if destination.get("kind") == "member" else ROBOT_RATE

    def max_bytes(self, destination: dict[str, Any]) -> int:
        if destination.get("kind") == "member" and self.settings.dingtalk_agent_id is not None:
            return WORK_NOTICE_MAX_BYTES
        return ROBOT_MAX_BYTES

    async def deliver(self, destination: dict[str, Any], message: OutgoingMessage) -> None:
        if message.image is not None:
            shown = picture_markdown(message, self.settings.public_url)
            if shown is None:
                return  # no public URL to show it from: the report stands as text
            message = shown
        kind = destination.get("kind")
        if kind == "session_webhook":
            await self._deliver_session(destination, message)
        elif kind == "team":
            await self._deliver_team(destination, message)
        elif kind == "member":
            await self._deliver_member(destination, message)
        else:
            raise PermanentFailure(f"unknown DingTalk destination kind {kind!r}")

    # ---------------------------------------------------------------- session webhook
    def _trusted_webhook(self, url: str) -> bool:
        parts = urlsplit(url)
        configured = urlsplit(self.oapi)
        return parts.scheme == configured.scheme and parts.netloc.lower() == self._oapi_netloc

    async def _deliver_session(self, destination: dict[str, Any], message: OutgoingMessage) -> None:
        url = str(destination.get("url") or "")
        fallback = destination.get("fallback")
        if not self._trusted_webhook(url):
            # Never post to a URL taken from a request unless it is DingTalk's own host.
            raise PermanentFailure("sessionWebhook host is not the configured DingTalk host", destination_broken=False)
        expires_at = int(destination.get("expires_at") or 0)
        if expires_at and self.wall_clock() * 1000 >= expires_at - SESSION_WEBHOOK_MARGIN_MS:
            if fallback:
                return await self.deliver(fallback, message)
            raise PermanentFailure("sessionWebhook expired and no fallback")
        data = await self._post_legacy(url, robot_markdown_body(message), what="sessionWebhook")
        if data.get("errcode") == SESSION_GONE and fallback:
            return await self.deliver(fallback, message)
        self._check_legacy(data, what="sessionWebhook")

    # ---------------------------------------------------------------- team (group)
    async def _custom_robot(self, chat_id: str) -> dict[str, str] | None:
        if self.db is None:
            return None
        row = await self.db.outbox.team_settings_by_chat(PLATFORM, chat_id)
        return dingtalk_robot(row)

    async def _deliver_team(self, destination: dict[str, Any], message: OutgoingMessage) -> None:
        chat_id = str(destination.get("chat_id") or "")
        robot = destination.get("custom_robot") or await self._custom_robot(chat_id)
        if robot:
            return await self._deliver_custom_robot(robot, message)
        if not chat_id:
            raise PermanentFailure("team destination without chat_id")
        r = render(message)
        await self._post_api(
            "/v1.0/robot/groupMessages/send",
            {"robotCode": self.robot_code, "openConversationId": chat_id, "msgKey": "sampleMarkdown",
             "msgParam": json.dumps({"title": r.title, "text": r.text}, ensure_ascii=False)},
        )

    async def _deliver_custom_robot(self, robot: dict[str, str], message: OutgoingMessage) -> None:
        webhook = robot["webhook"]
        if not self._trusted_webhook(webhook):
            raise PermanentFailure("custom robot webhook is not on the configured DingTalk host",
                                   destination_broken=True)
        params: dict[str, str] = {}
        if robot.get("secret"):
            ts = str(int(self.wall_clock() * 1000))  # fresh per request: DingTalk rejects > 1 h old
            params = {"timestamp": ts, "sign": sign(robot["secret"], ts)}
        data = await self._post_legacy(webhook, robot_markdown_body(message), what="custom robot", params=params)
        self._check_legacy(data, what="custom robot")

    # ---------------------------------------------------------------- member (direct)
    async def _deliver_member(self, destination: dict[str, Any], message: OutgoingMessage) -> None:
        user_ids = [str(u) for u in destination.get("user_ids") or []]
        if not user_ids:
            raise PermanentFailure("member destination without user_ids")
        r = render(message)
        if self.settings.dingtalk_agent_id is not None:
            for start in range(0, len(user_ids), WORK_MAX_USERS):
                batch = user_ids[start : start + WORK_MAX_USERS]
                body = {"agent_id": self.settings.dingtalk_agent_id, "userid_list": ",".join(batch),
                        "msg": {"msgtype": "markdown", "markdown": {"title": r.title, "text": r.text}}}
                await self._post_topapi("/topapi/message/corpconversation/asyncsend_v2", body)
            return
        for start in range(0, len(user_ids), OTO_MAX_USERS):
            batch = user_ids[start : start + OTO_MAX_USERS]
            await self._post_api(
                "/v1.0/robot/oToMessages/batchSend",
                {"robotCode": self.robot_code, "userIds": batch, "msgKey": "sampleMarkdown",
                 "msgParam": json.dumps({"title": r.title, "text": r.text}, ensure_ascii=False)},
            )

    # ---------------------------------------------------------------- HTTP plumbing
    async def _fetch_token(self) -> tuple[str, float]:
        body = {"appKey": self.settings.dingtalk_app_key, "appSecret": self.settings.dingtalk_app_secret}
        try:
            async with platform_request(self.http, "POST", f"{self.api}/v1.0/oauth2/accessToken",
                                        what="dingtalk accessToken", json=body, timeout=HTTP_TIMEOUT) as resp:
                data = await resp.json(content_type=None)
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, ValueError) as err:
            raise RetryLater(f"access token request failed: {type(err).__name__}") from None
        if status >= 500:
            raise RetryLater(f"access token request: HTTP {status}")
        if status != 200 or not isinstance(data, dict) or not data.get("accessToken"):
            code = data.get("code") if isinstance(data, dict) else None
            raise PermanentFailure(f"access token refused: HTTP {status} {code}", destination_broken=True)
        return str(data["accessToken"]), float(data.get("expireIn") or 7200)

    async def _post_legacy(self, url: str, body: dict[str, Any], *, what: str,
                           params: dict[str, str] | None = None) -> dict[str, Any]:
        # Redirects are refused (`RedirectRefused`, permanent): the URL's host is the destination we checked,
        # and following would carry the reply and the token or signature to another one.
        try:
            async with platform_request(self.http, "POST", url, what=f"dingtalk {what}", json=body, params=params,
                                        timeout=HTTP_TIMEOUT) as resp:
                if resp.status >= 500 or resp.status == 429:
                    raise RetryLater(f"HTTP {resp.status}")
                data = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError) as err:
            raise RetryLater(f"network error: {type(err).__name__}") from None
        except ValueError:
            raise RetryLater("answer is not JSON") from None
        return data if isinstance(data, dict) else {}

    def _check_legacy(self, data: dict[str, Any], *, what: str) -> None:
        code = data.get("errcode", 0)
        try:
            code = int(code)
        except (TypeError, ValueError):
            raise PermanentFailure(f"{what}: unexpected errcode {code!r}") from None
        if code == 0:
            return
        errmsg = str(data.get("errmsg", ""))[:200]
        if code in RATE_LIMITED:
            raise RetryLater(f"{what}: rate limited ({code}), robot blocked for 10 minutes", after=BLOCKED_SECONDS)
        if code in QPM_LIMITED:
            raise RetryLater(f"{what}: quota per minute exceeded ({code})", after=60)
        if code == 310000:
            category = security_category(errmsg)
            raise PermanentFailure(f"{what}: 安全设置校验失败（{category}）: {errmsg}", destination_broken=True,
                                   category=category)
        if code in DESTINATION_GONE:
            raise PermanentFailure(f"{what}: {DESTINATION_GONE[code]} ({code})", destination_broken=True,
                                   category=DESTINATION_GONE[code])
        if code == SESSION_GONE:
            raise PermanentFailure(f"{what}: session expired ({code})")
        raise PermanentFailure(f"{what}: errcode {code} {errmsg}")

    async def _post_topapi(self, path: str, body: dict[str, Any]) -> None:
        async def post(token: str) -> dict[str, Any]:
            return await self._post_legacy(f"{self.oapi}{path}", body, what="work notification",
                                           params={"access_token": token})

        data = await with_fresh_token(self.tokens, post, _legacy_token_rejected)
        self._check_legacy(data, what="work notification")

    async def _post_api(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async def post(token: str) -> tuple[int, Any]:
            try:
                async with platform_request(self.http, "POST", f"{self.api}{path}", what=f"dingtalk {path}",
                                            json=body, timeout=HTTP_TIMEOUT,
                                            headers={"x-acs-dingtalk-access-token": token}) as resp:
                    try:
                        return resp.status, await resp.json(content_type=None)
                    except ValueError:
                        return resp.status, None
            except (TimeoutError, aiohttp.ClientError) as err:
                raise RetryLater(f"network error: {type(err).__name__}") from None

        status, data = await with_fresh_token(self.tokens, post, _api_token_rejected)
        if 200 <= status < 300:
            return data if isinstance(data, dict) else {}
        code = _api_code(data)
        if status >= 500 or status == 429 or "flowcontrol" in code.lower() or "throttl" in code.lower():
            raise RetryLater(f"{path}: HTTP {status} {code}", after=60 if status == 429 else None)
        broken = any(k in code for k in API_DESTINATION_GONE)
        raise PermanentFailure(f"{path}: HTTP {status} {code}", destination_broken=broken)


def _legacy_token_rejected(data: dict[str, Any]) -> bool:
    """oapi answers a dead token with its errcode, or wraps it in errcode 88 with the real one in sub_code."""
    code = str(data.get("errcode", 0))
    return code in TOKEN_INVALID or (code == "88" and str(data.get("sub_code", "")) in TOKEN_INVALID)


def _api_code(data: Any) -> str:
    return str(data.get("code", "")) if isinstance(data, dict) else ""


def _api_token_rejected(answer: tuple[int, Any]) -> bool:
    status, data = answer
    if 200 <= status < 300:
        return False
    code = _api_code(data)
    return status == 401 or code in ("InvalidAuthentication", "token.notExisted") or "accesstoken" in code.lower()


def security_category(errmsg: str) -> str:
    """310000's errmsg says which security rule failed; name it for the admins."""
    lower = errmsg.lower()
    if "sign" in lower:
        return "加签不匹配"
    if "keyword" in lower:
        return "关键词不符"
    if "timestamp" in lower:
        return "时间戳无效"
    if "ip" in lower:
        return "IP 不在白名单"
    return "未知安全规则"

