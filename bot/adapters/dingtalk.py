"""DingTalk (钉钉): the enterprise-internal app robot, event subscription, and sending through the outbox.

Receiving (PLATFORMS.md §3):
- `POST /dingtalk/robot` — robot HTTP callbacks. Headers `timestamp` + `sign` =
  base64(HMAC-SHA256(appSecret, f"{timestamp}\\n{appSecret}")) are checked (constant time, ±1 h)
  before the body is parsed. The signature does not cover the body, so dedup on `msgId` is what
  stops a replay from acting twice.
- Stream mode lives in `bot.adapters.dingtalk_stream` and feeds the same `DingTalkInbound`.
- `POST /dingtalk/events` — event subscription (§3c), dingtalk-sdk's `DingTalkCrypto`, answered with
  the encrypted "success" inside the 1500 ms deadline. `user_leave_org` triggers 离职继承.

Acknowledge fast, work after (DESIGN.md): a verified robot message (HTTP callback or Stream frame) is
recorded with its payload in its unique `inbound_messages` row — the same row that recognises a
re-delivery — and answered (HTTP 200 / Stream ack) as soon as that row has committed, typically in a few
milliseconds and never after the command. The command then runs from an in-process queue, and its
transaction marks the row done together with its effects, so a crash between the answer and the
command loses nothing (`DingTalkInbound.recover` picks stale rows up, on start and every few seconds,
claiming them with a lease so two replicas never both take one) and a re-delivery has one effect.

Nothing is answered inline on DingTalk: the reply sink writes every reply to the outbox inside the
command's transaction, addressed to the message's sessionWebhook (valid ~90 min) with the group API
(or the 1:1 API for single chats) as the fallback once it has expired. `DingTalkDeliverer` sends rows.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from bot.adapters.tokens import TokenCache
from bot.delivery import OutgoingMessage, PermanentFailure, RateLimit, RetryLater, split_text
from bot.messages import IncomingMessage, Mention, Reply, render_mentions
from bot.router import Router
from bot.settings import Settings
from storage.database import Database
from storage.offboarding import TeamHandover, hand_over_departed
from storage.store import Store
from storage.team_settings import dingtalk_robot

with warnings.catch_warnings():
    # dingtalk-sdk 1.3.8: invalid escape sequences in dingtalk/client/api/taobao.py, compiled even by
    # `import dingtalk.crypto` (PLATFORMS.md §5.1).
    warnings.filterwarnings("ignore", "invalid escape sequence", DeprecationWarning)
    warnings.filterwarnings("ignore", "invalid escape sequence", SyntaxWarning)
    from dingtalk.core.exceptions import InvalidCorpIdOrSuiteKeyException, InvalidSignatureException
    from dingtalk.crypto import DingTalkCrypto

log = logging.getLogger("salesbot.dingtalk")

PLATFORM = "dingtalk"
MAX_BODY_BYTES = 64 * 1024
SIGN_MAX_SKEW_MS = 3_600_000
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


# ---------------------------------------------------------------------------------------------- signing
def sign(secret: str, timestamp: int | str) -> str:
    """base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")) — robot callbacks and 加签 webhooks."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class Rejected(Exception):
    """A callback we refuse; `status` is the HTTP answer, `reason` is logged (never a secret)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def verify_robot_headers(secret: str, timestamp: str | None, signature: str | None, now_ms: int) -> None:
    if not timestamp or not signature:
        raise Rejected(401, "missing timestamp or sign header")
    if not timestamp.isdigit():
        raise Rejected(401, "malformed timestamp")
    if abs(now_ms - int(timestamp)) > SIGN_MAX_SKEW_MS:
        raise Rejected(403, "timestamp more than 1 hour off")
    if not hmac.compare_digest(signature.encode(), sign(secret, timestamp).encode()):
        raise Rejected(401, "bad signature")


# ---------------------------------------------------------------------------------------------- parsing
def parse_robot_message(payload: Any, settings: Settings) -> IncomingMessage:
    """The robot callback JSON (HTTP body or Stream `data`, §3a) → IncomingMessage."""
    if not isinstance(payload, dict):
        raise Rejected(400, "body is not a JSON object")
    try:
        msg_id = str(payload["msgId"])
        conversation_id = str(payload["conversationId"])
    except KeyError as err:
        raise Rejected(400, f"missing field {err.args[0]}") from None
    sender = payload.get("senderStaffId") or payload.get("senderId")
    if not sender or not msg_id or not conversation_id:
        raise Rejected(400, "missing sender, msgId or conversationId")
    text_part = payload.get("text")
    text = text_part.get("content", "") if isinstance(text_part, dict) else ""
    if not isinstance(text, str):
        raise Rejected(400, "text.content is not a string")
    bot_id = payload.get("chatbotUserId")
    mentions = tuple(
        Mention(user_id=str(u["staffId"]))
        for u in payload.get("atUsers") or []
        if isinstance(u, dict) and u.get("staffId") and u.get("dingtalkId") != bot_id
    )
    single = str(payload.get("conversationType", "2")) == "1"
    webhook = payload.get("sessionWebhook")
    expires = payload.get("sessionWebhookExpiredTime")
    return IncomingMessage(
        platform=PLATFORM,
        org_key=str(payload.get("senderCorpId") or payload.get("chatbotCorpId") or settings.dingtalk_app_key),
        chat_id=conversation_id,
        chat_title=payload.get("conversationTitle") or (f"{payload.get('senderNick') or sender} 的私聊" if single else None),
        chat_type="single" if single else "group",
        user_id=str(sender),
        user_name=payload.get("senderNick"),
        text=text.strip(),
        msg_id=msg_id,
        mentions=mentions,
        reply_context={
            "session_webhook": webhook if isinstance(webhook, str) else None,
            "expires_at": int(expires) if isinstance(expires, (int, str)) and str(expires).isdigit() else 0,
            "conversation_type": "1" if single else "2",
        },
    )


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


def robot_markdown_body(message: OutgoingMessage) -> dict[str, Any]:
    """Body for sessionWebhook and custom robot webhooks."""
    r = render(message)
    return {"msgtype": "markdown", "markdown": {"title": r.title, "text": r.text}, "at": {"atUserIds": r.at_user_ids, "isAtAll": False}}


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
    message = reply_or_message if isinstance(reply_or_message, OutgoingMessage) else OutgoingMessage.from_reply(reply_or_message)
    for part in split_text(message.text, max_bytes):
        body = OutgoingMessage(text=part, title=message.title, names=message.names).to_json()
        await store.enqueue(platform=PLATFORM, destination=destination, dest_key=dest_key(destination), body=body, now=now)


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
        data = await self._post_legacy(url, robot_markdown_body(message))
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
            raise PermanentFailure("custom robot webhook is not on the configured DingTalk host", destination_broken=True)
        params: dict[str, str] = {}
        if robot.get("secret"):
            ts = str(int(self.wall_clock() * 1000))  # fresh per request: DingTalk rejects > 1 h old
            params = {"timestamp": ts, "sign": sign(robot["secret"], ts)}
        data = await self._post_legacy(webhook, robot_markdown_body(message), params=params)
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
            async with self.http.post(f"{self.api}/v1.0/oauth2/accessToken", json=body, timeout=HTTP_TIMEOUT) as resp:
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

    async def _post_legacy(self, url: str, body: dict[str, Any], params: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            async with self.http.post(url, json=body, params=params, timeout=HTTP_TIMEOUT) as resp:
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
        for attempt in (1, 2):
            token = await self.tokens.get()
            data = await self._post_legacy(f"{self.oapi}{path}", body, params={"access_token": token})
            code = str(data.get("errcode", 0))
            sub = str(data.get("sub_code", ""))
            if code in TOKEN_INVALID or (code == "88" and sub in TOKEN_INVALID):
                self.tokens.invalidate(token)
                if attempt == 1:
                    continue
                raise RetryLater("access token rejected twice")
            self._check_legacy(data, what="work notification")
            return

    async def _post_api(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in (1, 2):
            token = await self.tokens.get()
            try:
                async with self.http.post(f"{self.api}{path}", json=body, timeout=HTTP_TIMEOUT,
                                          headers={"x-acs-dingtalk-access-token": token}) as resp:
                    status = resp.status
                    try:
                        data = await resp.json(content_type=None)
                    except ValueError:
                        data = None
            except (TimeoutError, aiohttp.ClientError) as err:
                raise RetryLater(f"network error: {type(err).__name__}") from None
            if 200 <= status < 300:
                return data if isinstance(data, dict) else {}
            code = str(data.get("code", "")) if isinstance(data, dict) else ""
            if status == 401 or code in ("InvalidAuthentication", "token.notExisted") or "accesstoken" in code.lower():
                self.tokens.invalidate(token)
                if attempt == 1:
                    continue
                raise RetryLater("access token rejected twice")
            if status >= 500 or status == 429 or "flowcontrol" in code.lower() or "throttl" in code.lower():
                raise RetryLater(f"{path}: HTTP {status} {code}", after=60 if status == 429 else None)
            broken = any(k in code for k in ("group.disbanded", "bot.stopped", "robotCode", "openConversationId", "robot.notExist"))
            raise PermanentFailure(f"{path}: HTTP {status} {code}", destination_broken=broken)
        raise RetryLater("unreachable")  # pragma: no cover


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


# ---------------------------------------------------------------------------------------------- inbound
# Acknowledge fast, work after (DESIGN.md): a robot message is recorded (payload and all) in its unique
# inbound row and answered at once; the command runs from an in-process queue and marks the row done
# in its own transaction. The recording process holds the row for ACCEPT_LEASE_S (its queue may be
# backed up under load; another replica must not run it meanwhile); a row still "received" after that
# — the process crashed, or its queue overflowed — is claimed with a fresh lease by whichever replica
# looks first.
QUEUE_MAX = 10_000
ACCEPT_LEASE_S = 30.0
RECOVER_AFTER_S = 5.0
RECOVER_EVERY_S = 5.0
RECOVER_LEASE_S = 60.0
RECOVER_BATCH = 200
ACK_PRIORITY_S = 0.02
# Queued commands that share one transaction at most (see Router.handle_queued).
BATCH_MAX = 32


def default_queue_workers(db: Database) -> int:
    """Commands in flight at once: SQLite has one writer (and a pool of one), PostgreSQL many."""
    return 1 if db.is_sqlite else 3


@dataclass
class DingTalkInbound:
    """Turns a verified robot payload or event into router work; shared by HTTP and Stream modes."""

    settings: Settings
    db: Database
    router: Router
    deliverer_max_bytes: Callable[[dict[str, Any]], int]
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    wall_clock: Callable[[], float] = time.time
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    queue: asyncio.Queue[IncomingMessage] | None = None
    queued_ids: set[str] = field(default_factory=set)
    _runners: list[asyncio.Task[Any]] = field(default_factory=list)
    _workers: int = 0
    recovered_once: asyncio.Event = field(default_factory=asyncio.Event)  # the start-up pass is done
    _acks: int = 0
    _acks_idle: asyncio.Event = field(default_factory=asyncio.Event)
    batch_sizes: Counter[int] = field(default_factory=Counter)  # how many commands shared a transaction

    def __post_init__(self) -> None:
        self._acks_idle.set()

    # ---------------------------------------------------------------- acknowledgements first
    # Commands are CPU-bound and share the event loop with the webhook. A queue worker about to start
    # a command first lets callbacks in flight finish (up to ACK_PRIORITY_S), so acknowledgements do
    # not queue behind commands; past that it starts anyway, so commands are never starved.
    def ack_started(self) -> None:
        self._acks += 1
        self._acks_idle.clear()

    def ack_finished(self) -> None:
        self._acks -= 1
        if self._acks <= 0:
            self._acks = 0
            self._acks_idle.set()

    # ---------------------------------------------------------------- the queue
    def start(self, workers: int | None = None, *, recover_every: float | None = RECOVER_EVERY_S) -> None:
        """Start the queue's workers and (unless `recover_every` is None) the periodic recovery."""
        if self.queue is None:  # a second start() adds workers to the same queue
            self.queue = asyncio.Queue(QUEUE_MAX)
        workers = default_queue_workers(self.db) if workers is None else workers
        for n in range(self._workers, self._workers + workers):
            self._runners.append(asyncio.create_task(self._work(), name=f"dingtalk-inbound-{n}"))
        self._workers += workers
        if recover_every is not None:
            self._runners.append(asyncio.create_task(self._recover_loop(recover_every), name="dingtalk-recover"))

    async def stop(self, timeout: float = 5.0) -> None:
        """Finish what is queued (up to `timeout`; the rest stays recorded for recovery), then stop."""
        if self.queue is not None and self._workers:
            try:
                await asyncio.wait_for(self.queue.join(), timeout)
            except TimeoutError:
                log.warning("dingtalk inbound: %d queued messages left for recovery", self.queue.qsize())
        for task in self._runners:
            task.cancel()
        await asyncio.gather(*self._runners, return_exceptions=True)
        self._runners.clear()

    async def idle(self) -> None:
        """Wait until every queued command has been processed (tests, shutdown)."""
        if self.queue is not None and self._workers:
            await self.queue.join()
        await self.drain()

    async def accept(self, payload: Any) -> bool:
        """Record a verified robot payload durably and queue it; False for a re-delivery.

        Returns once the row has committed, which is when the platform may be answered: from then
        on a crash loses nothing (recovery picks the row up) and a re-delivery is recognised.
        """
        msg = parse_robot_message(payload, self.settings)
        now = self.clock()
        new = await self.db.queue_inbound(PLATFORM, msg.msg_id, msg.org_key, payload, now,
                                          lease_until=now + timedelta(seconds=ACCEPT_LEASE_S))
        if new:
            self._submit(msg)
        else:
            log.info("duplicate delivery acknowledged platform=%s msg_id=%s", PLATFORM, msg.msg_id)
        return new

    def _submit(self, msg: IncomingMessage) -> None:
        if msg.msg_id in self.queued_ids:
            return
        if self.queue is None:  # not started (a bare DingTalkInbound): process in a task of its own
            task = asyncio.ensure_future(self.process(msg))
            self.tasks.add(task)
            task.add_done_callback(self._done)
            return
        try:
            self.queue.put_nowait(msg)
        except asyncio.QueueFull:
            log.warning("dingtalk inbound queue full; msg_id=%s left for recovery", msg.msg_id)
            return
        self.queued_ids.add(msg.msg_id)

    async def _work(self) -> None:
        assert self.queue is not None
        while True:
            batch = [await self.queue.get()]
            try:
                if not self._acks_idle.is_set():
                    try:
                        await asyncio.wait_for(self._acks_idle.wait(), ACK_PRIORITY_S)
                    except TimeoutError:
                        pass
                # Whatever queued up meanwhile runs in the same transaction (Router.handle_queued):
                # at low load a batch is one message; under load the commit is shared.
                while len(batch) < BATCH_MAX and not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                self.batch_sizes[len(batch)] += 1
                await self.process_batch(batch)
            except Exception:
                # Stays "received": recovery retries it once it is stale.
                log.exception("dingtalk inbound: processing failed msg_ids=%s", ",".join(m.msg_id for m in batch))
            finally:
                for msg in batch:
                    self.queued_ids.discard(msg.msg_id)
                    self.queue.task_done()

    async def process(self, msg: IncomingMessage) -> None:
        """Run a recorded command; its transaction marks the inbound row done with its effects."""
        await self.process_batch([msg])

    async def process_batch(self, msgs: list[IncomingMessage]) -> None:
        for msg, replies in zip(msgs, await self.router.handle_queued(msgs)):
            await self._settle_unanswered(msg, replies)

    async def _settle_unanswered(self, msg: IncomingMessage, replies: list[Reply]) -> None:
        if replies:
            # The router's own apology (its transaction rolled back, the row is still "received") or
            # NO_TEAM_YET (committed): queue it, and settle a failed row so it is not retried.
            now = self.clock()
            async with self.db.transaction() as store:
                await store.finish_inbound(PLATFORM, msg.msg_id, now, status="failed")
                await store.bind(platform=PLATFORM, org_key=msg.org_key, chat_id=msg.chat_id, chat_title=msg.chat_title,
                                 user_id=None, user_name=None, now=now)
                for reply in replies:
                    destination = chat_destination(msg)
                    await enqueue_reply(store, destination, reply, now, self.deliverer_max_bytes(destination))

    async def recover(self, older_than_s: float | None = None) -> int:
        """Claim recorded-but-unprocessed messages older than `older_than_s` whose lease has lapsed
        (their process died, or its queue overflowed) and queue them here."""
        older_than_s = RECOVER_AFTER_S if older_than_s is None else older_than_s
        now = self.clock()
        async with self.db.transaction() as store:
            rows = await store.claim_stale_inbound(
                PLATFORM, received_before=now - timedelta(seconds=older_than_s), now=now,
                lease_until=now + timedelta(seconds=RECOVER_LEASE_S), limit=RECOVER_BATCH)
        for msg_id, payload in rows:
            try:
                msg = parse_robot_message(payload, self.settings)
            except Rejected as err:
                log.error("dingtalk inbound: unreadable recorded payload msg_id=%s: %s", msg_id, err.reason)
                continue
            log.warning("dingtalk inbound: recovering msg_id=%s", msg_id)
            self._submit(msg)
        return len(rows)

    async def _recover_loop(self, every: float) -> None:
        while True:
            try:
                await self.recover()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dingtalk inbound: recovery pass failed")
            self.recovered_once.set()
            await asyncio.sleep(every)

    async def handle_robot_payload(self, payload: Any) -> None:
        """Record and run one robot payload to completion (no acknowledgement in between)."""
        msg = parse_robot_message(payload, self.settings)
        async with self.db.transaction() as store:
            new = await store.queue_inbound(PLATFORM, msg.msg_id, msg.org_key, payload, self.clock())
        if new:
            await self.process(msg)

    async def within(self, work: Awaitable[Any], budget_s: float) -> None:
        """Wait for `work` up to the platform's deadline; past it, let it finish in the background."""
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        try:
            await asyncio.wait_for(asyncio.shield(task), budget_s)
        except TimeoutError:
            log.warning("dingtalk work exceeded %.0f ms, continuing in background", budget_s * 1000)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            err = task.exception()
            log.error("dingtalk inbound work failed: %s", err, exc_info=err)

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def handle_event(self, event: dict[str, Any], dedup_id: str) -> None:
        """Org events. `user_leave_org` → 离职继承; everything else is acknowledged and ignored."""
        event_type = event.get("EventType") or event.get("eventType")
        if event_type != "user_leave_org":
            return
        user_ids = event.get("UserId") or event.get("userId") or []
        if isinstance(user_ids, str):
            user_ids = [user_ids]
        corp = event.get("CorpId") or event.get("corpId")
        now = self.clock()
        async with self.db.transaction() as store:
            if not await store.record_inbound(PLATFORM, dedup_id, str(corp or self.settings.dingtalk_app_key), now):
                log.info("duplicate event ignored id=%s", dedup_id)
                return
            for user_id in user_ids:
                handovers = await hand_over_departed(store, PLATFORM, corp, str(user_id), now)
                for handover in handovers:
                    await self._announce_handover(store, handover, now)
                log.info("user_leave_org handled user=%s teams=%d customers=%d", user_id, len(handovers),
                         sum(len(h.customers) for h in handovers))

    async def _announce_handover(self, store: Store, handover: TeamHandover, now: datetime) -> None:
        names = "、".join(c.name for c in handover.customers[:20])
        more = f" 等 {len(handover.customers)} 个" if len(handover.customers) > 20 else f"（共 {len(handover.customers)} 个）"
        departed = handover.departed.name
        store.bind_team(store.org, handover.team)
        if handover.heir is not None:
            text = (f"📋 离职继承：{departed} 已离职，其在「{handover.team.name}」负责的客户已转交给你：{names}{more}。"
                    f"\n请尽快跟进，发送「我的」查看。")
            message = OutgoingMessage(text=text, title="离职继承")
            destination = {"kind": "member", "user_ids": [handover.heir.user_id]}
        else:
            text = f"📋 离职继承：{departed} 已离职，本组未设主管，其客户已放入公海：{names}{more}。发送「公海」查看并认领。"
            message = OutgoingMessage(text=text, title="离职继承")
            destination = {"kind": "team", "chat_id": handover.team.chat_id}
        await enqueue_reply(store, destination, message, now, self.deliverer_max_bytes(destination))


# ---------------------------------------------------------------------------------------------- HTTP routes
DINGTALK_KEY = web.AppKey("dingtalk", DingTalkInbound)
DELIVERER_KEY = web.AppKey("dingtalk_deliverer", DingTalkDeliverer)


def _reject(request: web.Request, route: str, err: Rejected) -> web.Response:
    # One line, no secrets: neither the sign header nor the body.
    log.warning("dingtalk %s rejected status=%d reason=%s remote=%s", route, err.status, err.reason, request.remote)
    return web.json_response({"errcode": err.status, "errmsg": "rejected"}, status=err.status)


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise Rejected(413, f"body of {request.content_length} bytes over 64 KB")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Rejected(413, "body over 64 KB") from None
    if len(body) > MAX_BODY_BYTES:
        raise Rejected(413, "body over 64 KB")
    return body


async def robot_callback(request: web.Request) -> web.Response:
    inbound = request.app[DINGTALK_KEY]
    inbound.ack_started()
    try:
        return await _robot_callback(request, inbound)
    finally:
        inbound.ack_finished()


async def _robot_callback(request: web.Request, inbound: DingTalkInbound) -> web.Response:
    settings = inbound.settings
    try:
        verify_robot_headers(settings.dingtalk_app_secret or "", request.headers.get("timestamp"),
                             request.headers.get("sign"), int(inbound.wall_clock() * 1000))
        body = await _read_body(request)
        try:
            payload = json.loads(body)
        except ValueError:
            raise Rejected(400, "malformed JSON") from None
        parse_robot_message(payload, settings)  # reject malformed before acknowledging
    except Rejected as err:
        return _reject(request, "robot", err)
    # Answer as soon as the message is durably recorded: the command runs after, from the queue, so
    # DingTalk's retry clock never waits on it. If the record cannot be written, say so: DingTalk
    # re-delivers, and the unique row keeps that to one effect.
    try:
        await inbound.accept(payload)
    except Exception:
        log.exception("dingtalk robot: could not record msg_id=%s", payload.get("msgId"))
        return web.json_response({"errcode": 503, "errmsg": "retry later"}, status=503)
    return web.json_response({})


def event_crypto(settings: Settings) -> DingTalkCrypto:
    return DingTalkCrypto(settings.dingtalk_event_token, settings.dingtalk_event_aes_key, settings.dingtalk_app_key)


async def event_callback(request: web.Request) -> web.Response:
    inbound = request.app[DINGTALK_KEY]
    settings = inbound.settings
    started = time.monotonic()
    crypto = request.app[CRYPTO_KEY]
    query = request.query
    signature = query.get("signature") or query.get("msg_signature")
    timestamp = query.get("timestamp") or query.get("timeStamp")
    nonce = query.get("nonce")
    try:
        if not (signature and timestamp and nonce):
            raise Rejected(401, "missing signature, timestamp or nonce")
        body = await _read_body(request)
        try:
            data = json.loads(body)
            encrypt = data["encrypt"]
            if not isinstance(encrypt, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise Rejected(400, "malformed event body") from None
        expected = hashlib.sha1("".join(sorted([settings.dingtalk_event_token or "", timestamp, nonce, encrypt])).encode()).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise Rejected(401, "bad event signature")
        try:
            plaintext = crypto.decrypt_encrypt_str(signature, timestamp, nonce, encrypt)
        except InvalidSignatureException:
            raise Rejected(401, "bad event signature") from None
        except InvalidCorpIdOrSuiteKeyException:
            raise Rejected(403, "event for another receiver") from None
        except Exception:
            raise Rejected(400, "cannot decrypt event") from None
        try:
            event = json.loads(plaintext)
            if not isinstance(event, dict):
                raise ValueError
        except ValueError:
            raise Rejected(400, "event plaintext is not a JSON object") from None
    except Rejected as err:
        return _reject(request, "events", err)
    dedup_id = "event:" + hashlib.sha1(plaintext.encode() if isinstance(plaintext, str) else plaintext).hexdigest()
    # 1500 ms deadline for the answer; keep a margin for encrypting and sending it.
    remaining = 1.2 - (time.monotonic() - started)
    await inbound.within(inbound.handle_event(event, dedup_id), max(remaining, 0.05))
    return web.json_response(crypto.encrypt_message("success"))


CRYPTO_KEY = web.AppKey("dingtalk_crypto", DingTalkCrypto)
STREAM_KEY = web.AppKey("dingtalk_stream", object)


# ---------------------------------------------------------------------------------------------- component
def dingtalk_component(app: web.Application, inbound_options: dict[str, Any] | None = None,
                       **stream_options: Any) -> None:
    """Routes and lifecycle of the DingTalk adapter (added by bot.app.default_components).

    `stream_options` (backoff_initial, backoff_max, heartbeat) tune the Stream client, e.g. in tests;
    `inbound_options` are passed to `DingTalkInbound.start` (workers, recover_every).
    """
    inbound_options = inbound_options or {}
    from bot.app import DATABASE_KEY, DELIVERERS_KEY, REPLY_SINKS_KEY, ROUTER_KEY, SETTINGS_KEY

    settings = app[SETTINGS_KEY]
    if settings.dingtalk_mode == "http":
        app.router.add_post("/dingtalk/robot", robot_callback)
    if settings.dingtalk_event_token:
        app[CRYPTO_KEY] = event_crypto(settings)
        app.router.add_post("/dingtalk/events", event_callback)

    async def lifecycle(app: web.Application) -> Any:
        db = app[DATABASE_KEY]
        http = aiohttp.ClientSession()
        deliverer = DingTalkDeliverer(settings, http, db=db)
        # Nothing is answered inline on DingTalk: the shared router hands every reply to this sink,
        # which enqueues it in the command's transaction; the outbox worker delivers it.
        app[REPLY_SINKS_KEY][PLATFORM] = make_reply_sink(deliverer.max_bytes)
        app[DELIVERERS_KEY][PLATFORM] = deliverer
        inbound = DingTalkInbound(settings, db, app[ROUTER_KEY], deliverer.max_bytes)
        inbound.start(**inbound_options)
        app[DINGTALK_KEY] = inbound
        app[DELIVERER_KEY] = deliverer
        stream_task = None
        if settings.dingtalk_mode == "stream":
            from bot.adapters.dingtalk_stream import StreamClient

            client = StreamClient(settings, http, inbound, **stream_options)
            app[STREAM_KEY] = client
            stream_task = asyncio.create_task(client.run(), name="dingtalk-stream")
        try:
            yield
        finally:
            if stream_task is not None:
                stream_task.cancel()
                await asyncio.gather(stream_task, return_exceptions=True)
            await inbound.stop()
            await inbound.drain()
            await http.close()

    app.cleanup_ctx.append(lifecycle)


def deliverers(app: web.Application) -> Iterable[DingTalkDeliverer]:
    """The deliverer for the outbox worker, once the app has started."""
    return [app[DELIVERER_KEY]] if DELIVERER_KEY in app else []
