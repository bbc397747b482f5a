"""WeCom (企业微信) receiving: the envelope, and the HTTP callbacks of both ways in (PLATFORMS.md §1).

* ``/wecom/aibot`` — the 智能机器人 in API mode, the only way to receive @-mentions from group chats.
  JSON envelope, receiveid ``""``; a command finished within ``reply_budget_ms`` is answered as a passive
  encrypted ``stream`` (finish: true); otherwise the HTTP answer is empty at once and the reply goes
  through the one-shot ``response_url`` via the outbox.
* ``/wecom/app`` — the self-built app, 1:1 only. XML envelope, receiveid = CorpID; passive XML text
  reply or 200 empty + ``message/send`` later.

Several corps are served at ``/wecom/aibot/<corp_id>`` and ``/wecom/app/<corp_id>`` (see `bot.adapters.wecom`).
The callbacks run commands through their `Host` (the adapter core) and seal the answer with the envelope of
the corp the callback came to. wechatpy does the envelope's AES and the app's XML (pure CPU), imported
on first use; all HTTP is aiohttp.

Every rejected callback (bad signature, stale timestamp, undecryptable, wrong receiveid, malformed,
over 64 KB) answers 4xx, stores nothing and logs one line without secrets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from bot.adapters.common import Rejected, read_body, rejection, same_signature, string_field, timestamp_value
from bot.adapters.wecom_send import (
    PLATFORM,
    STREAM_MAX_BYTES,
    TEXT_MAX_BYTES,
    render_markdown,
    render_plain,
    truncate_bytes,
)
from bot.delivery import OutgoingMessage
from bot.messages import IncomingMessage, Reply

if TYPE_CHECKING:
    from storage.database import Database

log = logging.getLogger("salesbot.wecom")

# A callback whose timestamp is further than this from our clock is refused as stale/replayed.
MAX_CLOCK_SKEW = 900.0
# Sizes of the columns a callback's values end up in (storage/models.py): inbound_messages.msg_id (the
# app's key is "app:" + MsgId), members.user_id, teams.chat_id, organisations.corp_key. A value past
# them, or of another type, is refused (400) before anything is written.
MSG_ID_MAX = 191
APP_MSG_ID_MAX = MSG_ID_MAX - len("app:")
USER_ID_MAX = 128
CHAT_ID_MAX = 191
ORG_KEY_MAX = 128
RESPONSE_URL_MAX = 2048
TEXT_MAX_CHARS = 64 * 1024  # the body's bound: any text that arrived whole

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
class WeComEnvelope:
    """The WXBizMsgCrypt envelope for one receiveid, on top of wechatpy's `PrpCrypto` (imported on the first
    callback: nothing of wechatpy is loaded by a process that never receives one).

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
        """sha1 of the sorted token, timestamp, nonce and ciphertext (WXBizMsgCrypt)."""
        signed = "".join(sorted([self.token, timestamp, nonce, encrypt])).encode("utf-8", "replace")
        return hashlib.sha1(signed).hexdigest()

    def open(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        if not same_signature(self.signature(timestamp, nonce, encrypt), signature):
            raise Rejected(403, "bad signature")
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise Rejected(400, "ciphertext is not base64") from None
        if not raw or len(raw) % 16:
            raise Rejected(400, "ciphertext length is not a multiple of 16")
        from wechatpy.crypto import PrpCrypto
        from wechatpy.exceptions import InvalidAppIdException

        try:
            return PrpCrypto(self._key).decrypt(encrypt, self.receive_id)
        except InvalidAppIdException:
            raise Rejected(400, "receiveid does not match") from None
        except Exception:
            raise Rejected(400, "ciphertext does not decrypt") from None

    def seal(self, plaintext: str, timestamp: str, nonce: str) -> tuple[str, str]:
        """Encrypt a reply; returns (encrypt, signature)."""
        from wechatpy.crypto import PrpCrypto

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


def _object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    """`payload[key]` as an object ({} when absent); a 400 when it is something else."""
    value = payload.get(key) or {}
    if not isinstance(value, dict):
        raise Rejected(400, f"{key} is not an object")
    return value


def aibot_text(payload: dict[str, Any]) -> str | None:
    msgtype = payload.get("msgtype")
    if msgtype == "text":
        content = _object(payload, "text").get("content")
        return content if isinstance(content, str) else None
    if msgtype == "mixed":
        items = _object(payload, "mixed").get("msg_item") or []
        if not isinstance(items, list):
            raise Rejected(400, "mixed.msg_item is not a list")
        parts = [
            i["text"]["content"]
            for i in items
            if isinstance(i, dict)
            and i.get("msgtype") == "text"
            and isinstance(i.get("text"), dict)
            and isinstance(i["text"].get("content"), str)
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

@dataclass
class ReplyBudget:
    """Shared between the HTTP handler and the reply sink of one callback (see `WeComAdapter.run_with_budget`)."""

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


class Host(Protocol):
    """What the callbacks (HTTP and long connection) need from the adapter core (`WeComAdapter`)."""

    default: CorpEndpoint
    corps: dict[str, CorpEndpoint]
    db: Database
    router: Any
    wall_clock: Callable[[], float]

    async def aibot_message(
        self, payload: dict[str, Any], budget: ReplyBudget, corp: CorpEndpoint | None = None, **context: Any
    ) -> IncomingMessage | None: ...

    async def first_delivery(self, payload: dict[str, Any], corp: CorpEndpoint | None = None) -> bool: ...

    async def run_with_budget(self, msg: IncomingMessage) -> list[Reply] | None: ...


# ---------------------------------------------------------------------------------------------------
# HTTP callbacks
# ---------------------------------------------------------------------------------------------------
class WeComCallbacks:
    """GET (URL verification) and POST handlers of ``/wecom/aibot[/{corp_id}]`` and ``/wecom/app[/{corp_id}]``."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def routes(self, app: web.Application) -> None:
        for path in ("/wecom/aibot", "/wecom/aibot/{corp_id}"):
            app.router.add_get(path, self.aibot_get)
            app.router.add_post(path, self.aibot_post)
        for path in ("/wecom/app", "/wecom/app/{corp_id}"):
            app.router.add_get(path, self.app_get)
            app.router.add_post(path, self.app_post)

    def _query(self, request: web.Request, *names: str) -> list[str]:
        values = [request.query.get(n, "") for n in names]
        if not all(values):
            raise Rejected(400, "missing query parameters")
        return values

    def _check_fresh(self, timestamp: str) -> None:
        ts = timestamp_value(timestamp)
        if abs(self.host.wall_clock() - ts) > MAX_CLOCK_SKEW:
            raise Rejected(403, "stale timestamp")

    async def _verify_url(self, request: web.Request, envelope: WeComEnvelope | None, route: str) -> web.Response:
        """GET URL verification: the decrypted echostr as the raw body (must answer within 1 s)."""
        if envelope is None:
            return web.Response(status=404)
        try:
            sig, ts, nonce, echostr = self._query(request, "msg_signature", "timestamp", "nonce", "echostr")
            plain = envelope.open(sig, ts, nonce, echostr)
            self._check_fresh(ts)
        except Rejected as err:
            return rejection(log, f"wecom {route} callback", err, request.remote)
        return web.Response(body=plain.encode("utf-8"), content_type="text/plain")

    def _corp(self, request: web.Request) -> CorpEndpoint | None:
        """The corp a callback URL names (`/wecom/…/{corp_id}`), the default corp without one; None → 404."""
        corp_id = request.match_info.get("corp_id")
        return self.host.default if corp_id is None else self.host.corps.get(corp_id)

    async def _open(
        self, request: web.Request, envelope: WeComEnvelope, ciphertext_of: Callable[[bytes], Any], shape: str
    ) -> str:
        """Signature first, then decrypt, then freshness — the same for the JSON and the XML envelope."""
        sig, ts, nonce = self._query(request, "msg_signature", "timestamp", "nonce")
        body = await read_body(request)
        try:
            encrypt = ciphertext_of(body)
            if not isinstance(encrypt, str):
                raise TypeError
        except Exception:
            raise Rejected(400, f"body is not {shape}") from None
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
            except (ValueError, RecursionError):
                raise Rejected(400, "decrypted callback is not a JSON object") from None
            msgtype = payload.get("msgtype")
            if msgtype == "event":
                return await self._aibot_event(payload, corp)
            if msgtype == "stream":
                return web.Response()  # our streams always finish at once; nothing to refresh
            budget = ReplyBudget()
            response_url = string_field(payload, "response_url", RESPONSE_URL_MAX)
            msg = await self.host.aibot_message(payload, budget, corp, response_url=response_url)
        except Rejected as err:
            return rejection(log, "wecom aibot callback", err, request.remote)
        if msg is None:
            if not await self.host.first_delivery(payload, corp):
                return web.Response()
            return self._aibot_stream(UNSUPPORTED, envelope)
        replies = await self.host.run_with_budget(msg)
        if not replies:
            return web.Response()  # duplicate, or the reply will come through response_url
        content = render_markdown(combine(replies), native_mentions=False)
        return self._aibot_stream(content, envelope)

    async def _aibot_event(self, payload: dict[str, Any], corp: CorpEndpoint) -> web.Response:
        string_field(payload, "msgid", MSG_ID_MAX)  # its dedup key
        eventtype = _object(payload, "event").get("eventtype")
        if eventtype != "enter_chat" or not await self.host.first_delivery(payload, corp):
            return web.Response()
        # A plain `text` passive reply is allowed only for the enter_chat welcome (Doc 101031).
        assert corp.aibot is not None
        return self._aibot_sealed({"msgtype": "text", "text": {"content": WELCOME}}, corp.aibot)

    def _aibot_stream(self, content: str, envelope: WeComEnvelope) -> web.Response:
        stream = {"id": uuid.uuid4().hex, "finish": True, "content": truncate_bytes(content, STREAM_MAX_BYTES)}
        return self._aibot_sealed({"msgtype": "stream", "stream": stream}, envelope)

    def _aibot_sealed(self, reply: dict[str, Any], envelope: WeComEnvelope) -> web.Response:
        """Passive replies are sealed with the envelope of the corp the callback came from."""
        ts, nonce = str(int(self.host.wall_clock())), str(secrets.randbelow(9 * 10**9) + 10**9)
        encrypt, signature = envelope.seal(json.dumps(reply, ensure_ascii=False), ts, nonce)
        return web.json_response({"encrypt": encrypt, "msgsignature": signature, "timestamp": ts, "nonce": nonce})

    # ------------------------------------------------------------------ /wecom/app[/{corp_id}]
    async def app_get(self, request: web.Request) -> web.Response:
        corp = self._corp(request)
        return await self._verify_url(request, corp.app if corp else None, "app")

    async def app_post(self, request: web.Request) -> web.Response:
        corp = self._corp(request)
        envelope = corp.app if corp else None
        if corp is None or envelope is None:
            return web.Response(status=404)
        import xmltodict  # the app's XML envelope only: a process without the app never loads it

        try:
            plain = await self._open(
                request,
                envelope,
                lambda body: xmltodict.parse(body, disable_entities=True)["xml"]["Encrypt"],
                "<xml><Encrypt>…</Encrypt></xml>",
            )
            try:
                from wechatpy.enterprise import parse_message

                message = parse_message(plain)
                data: dict[str, Any] = dict(message._data)
            except Exception:
                raise Rejected(400, "decrypted callback is not a valid message") from None
            user_id = string_field(data, "FromUserName", USER_ID_MAX)
            if not user_id:
                raise Rejected(400, "decrypted callback is not a valid message")
            org_key = str(corp.corp_id)  # an app envelope exists only with a CorpID (its receiveid)
            if message.type != "text":
                # Events carry no MsgId: dedupe on FromUserName + CreateTime (§1b); nothing to answer.
                key = f"app:{user_id}:{data.get('CreateTime')}:{data.get('Event') or message.type}"
                async with self.host.db.transaction() as store:
                    await store.record_inbound(PLATFORM, key[:128], org_key, datetime.now(UTC))
                return web.Response()
            msg_id = string_field(data, "MsgId", APP_MSG_ID_MAX)
            if not msg_id:
                raise Rejected(400, "text message without MsgId")
            content = string_field(data, "Content", TEXT_MAX_CHARS) or ""
            chat_id = f"direct:{user_id}"  # the router scopes a 1:1 chat to the member's team
        except Rejected as err:
            return rejection(log, "wecom app callback", err, request.remote)
        msg = IncomingMessage(
            platform=PLATFORM,
            org_key=org_key,
            chat_id=chat_id,
            user_id=user_id,
            text=content,
            msg_id=f"app:{msg_id}",
            chat_type="single",
            reply_context={"source": "app", "budget": ReplyBudget(), "corp_id": corp.corp_id},
        )
        replies = await self.host.run_with_budget(msg)
        if not replies:
            return web.Response()  # 200 empty: the answer (if any) comes through message/send
        text = truncate_bytes(render_plain(combine(replies)), TEXT_MAX_BYTES).replace("]]>", "] ]>")
        from wechatpy.enterprise import create_reply

        reply_xml = create_reply(text, message).render()
        ts_out, nonce_out = str(int(self.host.wall_clock())), str(secrets.randbelow(9 * 10**9) + 10**9)
        encrypt, signature = envelope.seal(reply_xml, ts_out, nonce_out)
        xml = (
            f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt><MsgSignature><![CDATA[{signature}]]></MsgSignature>"
            f"<TimeStamp>{ts_out}</TimeStamp><Nonce><![CDATA[{nonce_out}]]></Nonce></xml>"
        )
        return web.Response(text=xml, content_type="application/xml")
