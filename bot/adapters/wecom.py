"""WeCom (企业微信) adapter: receive callbacks, answer inside the platform's deadline, send the rest later.

Two ways in (PLATFORMS.md §1):

* ``/wecom/aibot`` — the 智能机器人 in API mode, the only way to receive @-mentions from group chats.
  JSON envelope, receiveid ``""``; a command finished within ``reply_budget_ms`` is answered as a passive
  encrypted ``stream`` (finish: true); otherwise the HTTP answer is empty at once and the reply goes
  through the one-shot ``response_url`` via the outbox.
* ``/wecom/app`` — the self-built app, 1:1 only. XML envelope, receiveid = CorpID; passive XML text
  reply or 200 empty + ``message/send`` later.

(Long-connection mode lives in `bot.adapters.wecom_ws` and reuses the parsing and sink here; it serves
the default corp only — one WebSocket per bot id, configured by the SALESBOT_WECOM_AIBOT_* settings.)

Several corps (`[[wecom.corps]]` in the TOML file) are served at ``/wecom/aibot/<corp_id>`` and
``/wecom/app/<corp_id>``: the AI bot's receiveid is "" so nothing in the payload tells the corp — the URL
configured in each corp's admin console does. Each corp has its own envelopes, token cache and agent id,
and is its own organisation (org_key = its CorpID). The SALESBOT_WECOM_* settings are the default corp,
also reachable at the plain ``/wecom/aibot`` and ``/wecom/app``. An unknown corp in the URL is a 404.

wechatpy does the envelope crypto and XML parsing/rendering (pure CPU); all HTTP is aiohttp.

Every rejected callback (bad signature, stale timestamp, undecryptable, wrong receiveid, malformed,
over 64 KB) answers 4xx, stores nothing and logs one line without secrets.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import xmltodict
from aiohttp import web
from wechatpy.crypto import PrpCrypto, _get_signature
from wechatpy.enterprise import create_reply, parse_message
from wechatpy.exceptions import InvalidAppIdException

from bot.adapters.wecom_send import (
    MARKDOWN_MAX_BYTES,
    PLATFORM,
    STREAM_MAX_BYTES,
    TEXT_MAX_BYTES,
    WeComDeliverer,
    dest_key,
    render_markdown,
    render_plain,
    truncate_bytes,
)
from bot.delivery import OutgoingMessage, split_text
from bot.messages import IncomingMessage, Reply
from bot.settings import Settings
from storage.store import Store
from storage.team_settings import webhook_key

log = logging.getLogger("salesbot.wecom")

MAX_BODY_BYTES = 64 * 1024
# A callback whose timestamp is further than this from our clock is refused as stale/replayed.
MAX_CLOCK_SKEW = 900.0

# ---------------------------------------------------------------------------------------------------
# User-facing text (all Chinese wording of this adapter in one place)
# ---------------------------------------------------------------------------------------------------
WELCOME = (
    "你好，我是销售助手 👋\n"
    "在群里 @我 发指令即可，例如：@销售助手 认领 北京华为技术有限公司\n"
    "发送「帮助」查看全部命令。"
)
UNSUPPORTED = "暂时只能识别文字指令。发送「帮助」查看全部命令。"


# ---------------------------------------------------------------------------------------------------
# Envelope (PLATFORMS.md §0)
# ---------------------------------------------------------------------------------------------------
class CallbackRejected(Exception):
    """A callback we refuse; `reason` goes to the log and never carries secrets or payloads."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class WeComEnvelope:
    """The WXBizMsgCrypt envelope for one receiveid, on top of wechatpy's `PrpCrypto`.

    Signature first (constant-time), then decrypt; the receiveid check is wechatpy's.
    """

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        key = base64.b64decode(encoding_aes_key + "=")
        if len(key) != 32:
            raise ValueError("EncodingAESKey must decode to 32 bytes")
        self.token = token
        self.receive_id = receive_id
        self._key = key

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return _get_signature(self.token, timestamp, nonce, encrypt)

    def open(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        expected = self.signature(timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise CallbackRejected("bad signature", 403)
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise CallbackRejected("ciphertext is not base64", 400) from None
        if not raw or len(raw) % 16:
            raise CallbackRejected("ciphertext length is not a multiple of 16", 400)
        try:
            return PrpCrypto(self._key).decrypt(encrypt, self.receive_id)
        except InvalidAppIdException:
            raise CallbackRejected("receiveid does not match", 400) from None
        except Exception:
            raise CallbackRejected("ciphertext does not decrypt", 400) from None

    def seal(self, plaintext: str, timestamp: str, nonce: str) -> tuple[str, str]:
        """Encrypt a reply; returns (encrypt, signature)."""
        encrypt = PrpCrypto(self._key).encrypt(plaintext, self.receive_id)
        encrypt = encrypt.decode("ascii") if isinstance(encrypt, bytes) else str(encrypt)
        return encrypt, self.signature(timestamp, nonce, encrypt)


# ---------------------------------------------------------------------------------------------------
# Parsing helpers
# ---------------------------------------------------------------------------------------------------
_LEADING_AT = re.compile(r"^\s*@\S+[\s\u3000]*")


def strip_bot_mention(text: str) -> str:
    """Group messages arrive as "@销售助手 认领 华为" — drop the leading @bot token."""
    return _LEADING_AT.sub("", text, count=1).strip()


def aibot_text(payload: dict[str, Any]) -> str | None:
    msgtype = payload.get("msgtype")
    if msgtype == "text":
        content = (payload.get("text") or {}).get("content")
        return content if isinstance(content, str) else None
    if msgtype == "mixed":
        items = (payload.get("mixed") or {}).get("msg_item") or []
        parts = [
            i["text"]["content"]
            for i in items
            if isinstance(i, dict) and i.get("msgtype") == "text" and isinstance((i.get("text") or {}).get("content"), str)
        ]
        return " ".join(parts) if parts else None
    return None


def combine(replies: list[Reply]) -> OutgoingMessage:
    """Several chat replies to one message (one passive reply / one response_url post)."""
    names: dict[str, str] = {}
    texts: list[str] = []
    for reply in replies:
        names.update(reply.names)
        texts.append(f"**{reply.title}**\n{reply.text}" if reply.title else reply.text)
    return OutgoingMessage(text="\n\n".join(texts), names=names)


# ---------------------------------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Budget:
    """Shared between the HTTP handler and the reply sink of one callback (see `_run_with_budget`)."""

    late: bool = False
    inline: bool = False


@dataclass(frozen=True)
class CorpEndpoint:
    """What one corp's callbacks need: its envelopes and whether its app can send direct messages.

    `corp_id` is None only for a default corp configured without SALESBOT_WECOM_CORP_ID (AI bot only).
    """

    corp_id: str | None
    aibot: WeComEnvelope | None
    app: WeComEnvelope | None
    can_send_direct: bool

    @staticmethod
    def build(
        corp_id: str | None,
        aibot_token: str | None,
        aibot_aes_key: str | None,
        app_token: str | None,
        app_aes_key: str | None,
        app_secret: str | None,
    ) -> CorpEndpoint:
        aibot = WeComEnvelope(aibot_token, aibot_aes_key, "") if aibot_token and aibot_aes_key else None
        app = WeComEnvelope(app_token, app_aes_key, corp_id) if app_token and app_aes_key and corp_id else None
        return CorpEndpoint(corp_id, aibot, app, bool(app_secret))


class WeComAdapter:
    def __init__(self, settings: Settings, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.wall_clock = wall_clock
        s = settings
        self.default = CorpEndpoint.build(
            s.wecom_corp_id, s.wecom_aibot_token, s.wecom_aibot_aes_key, s.wecom_app_token, s.wecom_app_aes_key,
            s.wecom_app_secret,
        )
        # Corps by CorpID, for the /wecom/…/{corp_id} routes; the default corp too when it has an id.
        self.corps: dict[str, CorpEndpoint] = {s.wecom_corp_id: self.default} if s.wecom_corp_id else {}
        for corp in s.wecom_corps:
            self.corps[corp.corp_id] = CorpEndpoint.build(
                corp.corp_id, corp.aibot_token, corp.aibot_aes_key, corp.app_token, corp.app_aes_key, corp.app_secret
            )
        self.aibot: WeComEnvelope | None = self.default.aibot
        self.app: WeComEnvelope | None = self.default.app
        self.router: Any = None
        self.db: Any = None
        self.session: aiohttp.ClientSession | None = None
        self.deliverer: WeComDeliverer | None = None
        self.ws: Any = None  # the default corp's long connection
        self.ws_by_corp: dict[str, Any] = {}  # every long connection by the corp key its messages carry
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self, db: Any, router: Any) -> None:
        from bot.adapters.wecom_ws import WeComLongConnection

        s = self.settings
        self.db, self.router = db, router
        self.session = aiohttp.ClientSession()
        if s.wecom_aibot_mode == "websocket":
            self.ws = WeComLongConnection(
                self.session, s.wecom_aibot_ws_url, s.wecom_aibot_bot_id or "", s.wecom_aibot_secret or "", self,
                corp=self.default,
            )
            if s.wecom_corp_id:
                self.ws_by_corp[s.wecom_corp_id] = self.ws
        for corp in s.wecom_corps:
            if corp.aibot_mode == "websocket":
                self.ws_by_corp[corp.corp_id] = WeComLongConnection(
                    self.session, corp.aibot_ws_url or s.wecom_aibot_ws_url, corp.aibot_bot_id or "",
                    corp.aibot_secret or "", self, corp=self.corps[corp.corp_id],
                )
        self.deliverer = WeComDeliverer(
            self.session,
            api_base=s.wecom_api_base,
            corp_id=s.wecom_corp_id,
            app_secret=s.wecom_app_secret,
            agent_id=s.wecom_agent_id,
            database=db,
            ws=self.ws,
            ws_by_corp=self.ws_by_corp,
            corps=s.wecom_corps,
        )
        for connection in self._connections():
            connection.start()

    def _connections(self) -> list[Any]:
        return list(dict.fromkeys([c for c in (self.ws, *self.ws_by_corp.values()) if c is not None]))

    async def stop(self) -> None:
        for connection in self._connections():
            await connection.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ mapping
    def org_key(self, payload: dict[str, Any] | None = None, corp: CorpEndpoint | None = None) -> str:
        """Each corp is its own organisation; a default corp without a CorpID is keyed by its aibotid."""
        corp = corp or self.default
        return corp.corp_id or str((payload or {}).get("aibotid") or "wecom")

    def corp_of(self, msg: IncomingMessage) -> CorpEndpoint:
        return self.corps.get(str(msg.reply_context.get("corp_id") or "")) or self.default

    async def aibot_message(
        self, payload: dict[str, Any], budget: _Budget, corp: CorpEndpoint | None = None, **context: Any
    ) -> IncomingMessage | None:
        """An AI-bot callback body (HTTP or long connection) as an IncomingMessage; None if not text.

        `corp` is the corp whose URL the callback came to (the long connection serves the default corp)."""
        corp = corp or self.default
        msg_id = payload.get("msgid")
        user_id = (payload.get("from") or {}).get("userid")
        if not isinstance(msg_id, str) or not msg_id or not isinstance(user_id, str) or not user_id:
            raise CallbackRejected("callback lacks msgid or from.userid", 400)
        text = aibot_text(payload)
        if text is None:
            return None
        chat_id = payload.get("chatid") or None
        chat_type = "group" if payload.get("chattype") == "group" and chat_id else "single"
        org_key = self.org_key(payload, corp)
        if chat_type == "group":
            text = strip_bot_mention(text)
        else:
            chat_id = f"direct:{user_id}"  # the router scopes a 1:1 chat to the member's team
        return IncomingMessage(
            platform=PLATFORM,
            org_key=org_key,
            chat_id=str(chat_id),
            user_id=user_id,
            text=text,
            msg_id=msg_id,
            chat_type=chat_type,  # type: ignore[arg-type]
            reply_context={"source": "aibot", "budget": budget, "corp_id": corp.corp_id, **context},
        )

    # ------------------------------------------------------------------ reply sink
    async def reply_sink(self, store: Store, msg: IncomingMessage, replies: list[Reply], now: datetime) -> list[Reply]:
        """Inside the command's transaction: queue what must travel later, return what to answer inline."""
        budget: _Budget = msg.reply_context.get("budget") or _Budget()
        corp = self.corp_of(msg)
        inline: list[Reply] = []
        for reply in replies:
            if reply.audience == "team" and msg.chat_type != "group":
                # From a 1:1 chat: announce in the team's group through its robot webhook. From the
                # group itself the answer is inline — same chat, no webhook quota spent.
                key = webhook_key(store.team.settings)
                destination = (
                    {"kind": "webhook", "key": key} if key else self._with_corp({"kind": "team", "team_id": store.team.id}, corp)
                )
                await self.enqueue(store, destination, OutgoingMessage.from_reply(reply), now)
                continue
            elif reply.audience == "direct":
                if not (msg.chat_type == "single" and set(reply.user_ids) <= {msg.user_id}):
                    if corp.can_send_direct:
                        destination = self._with_corp({"kind": "member", "user_ids": list(reply.user_ids)}, corp)
                        await self.enqueue(store, destination, OutgoingMessage.from_reply(reply), now)
                    else:
                        log.warning("direct message dropped: no app secret for corp %s msg_id=%s", corp.corp_id, msg.msg_id)
                    continue
            inline.append(reply)
        if inline and budget.late:
            await self.enqueue_late(store, msg, inline, now)
            return []
        budget.inline = True
        return inline

    @staticmethod
    def _with_corp(destination: dict[str, Any], corp: CorpEndpoint) -> dict[str, Any]:
        """Name the corp whose app must send this (tokens, agent ids and user ids are per corp)."""
        return {**destination, "corp_id": corp.corp_id} if corp.corp_id else destination

    async def enqueue(
        self, store: Store, destination: dict[str, Any], message: OutgoingMessage, now: datetime, *, dedup: str | None = None
    ) -> None:
        limit = (self.deliverer.max_bytes(destination) if self.deliverer else MARKDOWN_MAX_BYTES) - 64
        if message.title:
            limit -= len(message.title.encode("utf-8"))
        for index, part in enumerate(split_text(message.text, limit)):
            body = OutgoingMessage(part, message.title if index == 0 else None, message.names).to_json()
            await store.enqueue(
                platform=PLATFORM,
                destination=destination,
                dest_key=dest_key(destination),
                body=body,
                now=now,
                dedup_key=f"{dedup}:{index}" if dedup else None,
            )

    async def enqueue_late(self, store: Store, msg: IncomingMessage, replies: list[Reply], now: datetime) -> None:
        """Replies that missed the passive-reply window: response_url (one shot) or message/send."""
        message = combine(replies)
        url = msg.reply_context.get("response_url")
        dedup = f"wecom:late:{msg.msg_id}"
        if url:
            # One-shot URL: one post, so one (truncated if need be) message.
            message = OutgoingMessage(truncate_bytes(message.text, MARKDOWN_MAX_BYTES - 64), None, message.names)
            destination = self._with_corp({"kind": "response_url", "url": url}, self.corp_of(msg))
            await self.enqueue(store, destination, message, now, dedup=dedup)
        elif self.corp_of(msg).can_send_direct:
            destination = self._with_corp({"kind": "member", "user_ids": [msg.user_id]}, self.corp_of(msg))
            await self.enqueue(store, destination, message, now, dedup=dedup)
        else:
            log.warning("late reply dropped: no response_url and no app secret msg_id=%s", msg.msg_id)

    # ------------------------------------------------------------------ running a command
    async def _run_with_budget(self, msg: IncomingMessage) -> list[Reply] | None:
        """Run the command; its replies if done within the budget, else None (they go via the outbox).

        The task is never cancelled: the database decides the command's effect whether or not we
        answer in time. If the sink already handed replies back inline when time ran out (commit was
        slow), `_finish_late` queues them in a fresh transaction.
        """
        budget: _Budget = msg.reply_context["budget"]
        task = asyncio.create_task(self.router.handle(msg))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.settings.reply_budget_ms / 1000)
        except asyncio.CancelledError:
            budget.late = True
            self._track(asyncio.create_task(self._finish_late(task, msg)))
            raise
        if task in done:
            return task.result()
        budget.late = True
        self._track(asyncio.create_task(self._finish_late(task, msg)))
        return None

    async def _finish_late(self, task: asyncio.Task[list[Reply]], msg: IncomingMessage) -> None:
        replies = await task
        if not replies:
            return
        now = datetime.now(UTC)
        async with self.db.transaction() as store:
            await self.enqueue_late(store, msg, replies, now)

    # ------------------------------------------------------------------ request plumbing
    def _reject(self, route: str, err: CallbackRejected) -> web.Response:
        log.warning("wecom %s callback rejected status=%d reason=%s", route, err.status, err.reason)
        return web.Response(status=err.status, text=err.reason)

    def _query(self, request: web.Request, *names: str) -> list[str]:
        values = [request.query.get(n, "") for n in names]
        if not all(values):
            raise CallbackRejected("missing query parameters", 400)
        return values

    def _check_fresh(self, timestamp: str) -> None:
        try:
            ts = int(timestamp)
        except ValueError:
            raise CallbackRejected("timestamp is not a number", 400) from None
        if abs(self.wall_clock() - ts) > MAX_CLOCK_SKEW:
            raise CallbackRejected("stale timestamp", 403)

    async def _body(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise CallbackRejected("body over 64 KB", 413)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise CallbackRejected("body over 64 KB", 413) from None
        if len(body) > MAX_BODY_BYTES:
            raise CallbackRejected("body over 64 KB", 413)
        return body

    async def _verify_url(self, request: web.Request, envelope: WeComEnvelope | None, route: str) -> web.Response:
        """GET URL verification: the decrypted echostr as the raw body (must answer within 1 s)."""
        if envelope is None:
            return web.Response(status=404)
        try:
            sig, ts, nonce, echostr = self._query(request, "msg_signature", "timestamp", "nonce", "echostr")
            plain = envelope.open(sig, ts, nonce, echostr)
            self._check_fresh(ts)
        except CallbackRejected as err:
            return self._reject(route, err)
        return web.Response(body=plain.encode("utf-8"), content_type="text/plain")

    def _corp(self, request: web.Request) -> CorpEndpoint | None:
        """The corp a callback URL names (`/wecom/…/{corp_id}`), the default corp without one; None → 404."""
        corp_id = request.match_info.get("corp_id")
        return self.default if corp_id is None else self.corps.get(corp_id)

    async def _open(
        self, request: web.Request, envelope: WeComEnvelope, ciphertext_of: Callable[[bytes], Any], shape: str
    ) -> str:
        """Signature first, then decrypt, then freshness — the same for the JSON and the XML envelope."""
        sig, ts, nonce = self._query(request, "msg_signature", "timestamp", "nonce")
        body = await self._body(request)
        try:
            encrypt = ciphertext_of(body)
            if not isinstance(encrypt, str):
                raise TypeError
        except Exception:
            raise CallbackRejected(f"body is not {shape}", 400) from None
        plain = envelope.open(sig, ts, nonce, encrypt)
        self._check_fresh(ts)
        return plain

    # ------------------------------------------------------------------ /wecom/aibot[/{corp_id}]
    async def aibot_get(self, request: web.Request) -> web.Response:
        corp = self._corp(request)
        return await self._verify_url(request, corp.aibot if corp else None, "aibot")

    async def aibot_post(self, request: web.Request) -> web.Response:
        corp = self._corp(request)
        envelope = corp.aibot if corp else None
        if corp is None or envelope is None:
            return web.Response(status=404)
        try:
            plain = await self._open(request, envelope, lambda body: json.loads(body)["encrypt"], '{"encrypt": …}')
            try:
                payload = json.loads(plain)
                if not isinstance(payload, dict):
                    raise ValueError
            except ValueError:
                raise CallbackRejected("decrypted callback is not a JSON object", 400) from None
            msgtype = payload.get("msgtype")
            if msgtype == "event":
                return await self._aibot_event(payload, corp)
            if msgtype == "stream":
                return web.Response()  # our streams always finish at once; nothing to refresh
            budget = _Budget()
            msg = await self.aibot_message(payload, budget, corp, response_url=payload.get("response_url"))
        except CallbackRejected as err:
            return self._reject("aibot", err)
        if msg is None:
            if not await self._first_delivery(payload, corp):
                return web.Response()
            return self._aibot_stream(UNSUPPORTED, envelope)
        replies = await self._run_with_budget(msg)
        if not replies:
            return web.Response()  # duplicate, or the reply will come through response_url
        content = render_markdown(combine(replies), native_mentions=False)
        return self._aibot_stream(content, envelope)

    async def _first_delivery(self, payload: dict[str, Any], corp: CorpEndpoint | None = None) -> bool:
        """Record a non-command callback's msgid so that WeCom's re-delivery has no second effect."""
        msg_id = str(payload.get("msgid") or "")
        if not msg_id:
            return True
        async with self.db.transaction() as store:
            return await store.record_inbound(PLATFORM, msg_id, self.org_key(payload, corp), datetime.now(UTC))

    async def _aibot_event(self, payload: dict[str, Any], corp: CorpEndpoint) -> web.Response:
        eventtype = (payload.get("event") or {}).get("eventtype")
        if eventtype != "enter_chat" or not await self._first_delivery(payload, corp):
            return web.Response()
        # A plain `text` passive reply is allowed only for the enter_chat welcome (Doc 101031).
        assert corp.aibot is not None
        return self._aibot_sealed({"msgtype": "text", "text": {"content": WELCOME}}, corp.aibot)

    def _aibot_stream(self, content: str, envelope: WeComEnvelope) -> web.Response:
        stream = {"id": uuid.uuid4().hex, "finish": True, "content": truncate_bytes(content, STREAM_MAX_BYTES)}
        return self._aibot_sealed({"msgtype": "stream", "stream": stream}, envelope)

    def _aibot_sealed(self, reply: dict[str, Any], envelope: WeComEnvelope) -> web.Response:
        """Passive replies are sealed with the envelope of the corp the callback came from."""
        ts, nonce = str(int(self.wall_clock())), str(secrets.randbelow(9 * 10**9) + 10**9)
        encrypt, signature = envelope.seal(json.dumps(reply, ensure_ascii=False), ts, nonce)
        envelope = {"encrypt": encrypt, "msgsignature": signature, "timestamp": ts, "nonce": nonce}
        return web.json_response(envelope)

    # ------------------------------------------------------------------ /wecom/app[/{corp_id}]
    async def app_get(self, request: web.Request) -> web.Response:
        corp = self._corp(request)
        return await self._verify_url(request, corp.app if corp else None, "app")

    async def app_post(self, request: web.Request) -> web.Response:
        corp = self._corp(request)
        envelope = corp.app if corp else None
        if corp is None or envelope is None:
            return web.Response(status=404)
        try:
            plain = await self._open(
                request,
                envelope,
                lambda body: xmltodict.parse(body, disable_entities=True)["xml"]["Encrypt"],
                "<xml><Encrypt>…</Encrypt></xml>",
            )
            try:
                message = parse_message(plain)
                data: dict[str, Any] = dict(message._data)
                user_id = data.get("FromUserName")
                if not isinstance(user_id, str) or not user_id:
                    raise ValueError
            except Exception:
                raise CallbackRejected("decrypted callback is not a valid message", 400) from None
            org_key = str(corp.corp_id)  # an app envelope exists only with a CorpID (its receiveid)
            if message.type != "text":
                # Events carry no MsgId: dedupe on FromUserName + CreateTime (§1b); nothing to answer.
                key = f"app:{user_id}:{data.get('CreateTime')}:{data.get('Event') or message.type}"
                async with self.db.transaction() as store:
                    await store.record_inbound(PLATFORM, key[:128], org_key, datetime.now(UTC))
                return web.Response()
            msg_id = str(data.get("MsgId") or "")
            if not msg_id:
                raise CallbackRejected("text message without MsgId", 400)
            chat_id = f"direct:{user_id}"  # the router scopes a 1:1 chat to the member's team
        except CallbackRejected as err:
            return self._reject("app", err)
        msg = IncomingMessage(
            platform=PLATFORM,
            org_key=org_key,
            chat_id=chat_id,
            user_id=user_id,
            text=str(data.get("Content") or ""),
            msg_id=f"app:{msg_id}",
            chat_type="single",
            reply_context={"source": "app", "budget": _Budget(), "corp_id": corp.corp_id},
        )
        replies = await self._run_with_budget(msg)
        if not replies:
            return web.Response()  # 200 empty: the answer (if any) comes through message/send
        text = truncate_bytes(render_plain(combine(replies)), TEXT_MAX_BYTES).replace("]]>", "] ]>")
        reply_xml = create_reply(text, message).render()
        ts_out, nonce_out = str(int(self.wall_clock())), str(secrets.randbelow(9 * 10**9) + 10**9)
        encrypt, signature = envelope.seal(reply_xml, ts_out, nonce_out)
        xml = (
            f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt><MsgSignature><![CDATA[{signature}]]></MsgSignature>"
            f"<TimeStamp>{ts_out}</TimeStamp><Nonce><![CDATA[{nonce_out}]]></Nonce></xml>"
        )
        return web.Response(text=xml, content_type="application/xml")


WECOM_KEY = web.AppKey("wecom", WeComAdapter)


def wecom_component(app: web.Application, *, wall_clock: Callable[[], float] = time.time) -> None:
    """Routes, reply sink and lifecycle of the WeCom adapter (added when `settings.wecom_enabled`)."""
    from bot.app import DATABASE_KEY, DELIVERERS_KEY, REPLY_SINKS_KEY, ROUTER_KEY, SETTINGS_KEY

    adapter = WeComAdapter(app[SETTINGS_KEY], wall_clock=wall_clock)
    app[WECOM_KEY] = adapter
    app[REPLY_SINKS_KEY][PLATFORM] = adapter.reply_sink
    for path in ("/wecom/aibot", "/wecom/aibot/{corp_id}"):
        app.router.add_get(path, adapter.aibot_get)
        app.router.add_post(path, adapter.aibot_post)
    for path in ("/wecom/app", "/wecom/app/{corp_id}"):
        app.router.add_get(path, adapter.app_get)
        app.router.add_post(path, adapter.app_post)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await adapter.start(app[DATABASE_KEY], app[ROUTER_KEY])
        app[DELIVERERS_KEY][PLATFORM] = adapter.deliverer
        yield
        await adapter.stop()

    app.cleanup_ctx.append(lifecycle)
