"""DingTalk (钉钉) receiving: robot callbacks and event subscription (PLATFORMS.md §3).

- `POST /dingtalk/robot` — robot HTTP callbacks. Headers `timestamp` + `sign` =
  base64(HMAC-SHA256(appSecret, f"{timestamp}\\n{appSecret}")) are checked (constant time, ±1 h)
  before the body is parsed. The signature does not cover the body, so dedup on `msgId` is what
  stops a replay from acting twice. A verified message is recorded and answered at once; the command
  runs after, from `bot.inbound.Inbound`'s queue.
- Stream mode lives in `bot.adapters.dingtalk_stream` and feeds the same `Inbound`.
- `POST /dingtalk/events` — event subscription (§3c), dingtalk-sdk's `DingTalkCrypto` (imported only when
  event callbacks are configured), answered with the encrypted "success" inside the 1500 ms deadline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.adapters.common import Rejected, read_body, rejection
from bot.adapters.dingtalk_send import PLATFORM, sign
from bot.messages import IncomingMessage, Mention
from bot.settings import Settings

if TYPE_CHECKING:
    from dingtalk.crypto import DingTalkCrypto

    from bot.inbound import Inbound

log = logging.getLogger("salesbot.dingtalk")

SIGN_MAX_SKEW_MS = 3_600_000
EVENT_ANSWER_BUDGET_S = 1.2  # 1500 ms deadline for the answer; keep a margin for encrypting and sending it


# ---------------------------------------------------------------------------------------------- verifying
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
def _required(payload: dict[str, Any]) -> tuple[str, str, str]:
    """msgId, conversationId and the sender, or a 400."""
    try:
        msg_id = str(payload["msgId"])
        conversation_id = str(payload["conversationId"])
    except KeyError as err:
        raise Rejected(400, f"missing field {err.args[0]}") from None
    sender = payload.get("senderStaffId") or payload.get("senderId")
    if not sender or not msg_id or not conversation_id:
        raise Rejected(400, "missing sender, msgId or conversationId")
    return msg_id, conversation_id, str(sender)


def _text(payload: dict[str, Any]) -> str:
    text_part = payload.get("text")
    text = text_part.get("content", "") if isinstance(text_part, dict) else ""
    if not isinstance(text, str):
        raise Rejected(400, "text.content is not a string")
    return text


def _mentions(payload: dict[str, Any]) -> tuple[Mention, ...]:
    """Who was @-mentioned, the robot itself left out."""
    bot_id = payload.get("chatbotUserId")
    return tuple(
        Mention(user_id=str(u["staffId"]))
        for u in payload.get("atUsers") or []
        if isinstance(u, dict) and u.get("staffId") and u.get("dingtalkId") != bot_id
    )


def _reply_context(payload: dict[str, Any], single: bool) -> dict[str, Any]:
    webhook = payload.get("sessionWebhook")
    expires = payload.get("sessionWebhookExpiredTime")
    return {
        "session_webhook": webhook if isinstance(webhook, str) else None,
        "expires_at": int(expires) if isinstance(expires, (int, str)) and str(expires).isdigit() else 0,
        "conversation_type": "1" if single else "2",
    }


def parse_robot_message(payload: Any, settings: Settings) -> IncomingMessage:
    """The robot callback JSON (HTTP body or Stream `data`, §3a) → IncomingMessage."""
    if not isinstance(payload, dict):
        raise Rejected(400, "body is not a JSON object")
    msg_id, conversation_id, sender = _required(payload)
    text = _text(payload)
    single = str(payload.get("conversationType", "2")) == "1"
    return IncomingMessage(
        platform=PLATFORM,
        org_key=str(payload.get("senderCorpId") or payload.get("chatbotCorpId") or settings.dingtalk_app_key),
        chat_id=conversation_id,
        chat_title=payload.get("conversationTitle")
        or (f"{payload.get('senderNick') or sender} 的私聊" if single else None),
        chat_type="single" if single else "group",
        user_id=sender,
        user_name=payload.get("senderNick"),
        text=text.strip(),
        msg_id=msg_id,
        mentions=_mentions(payload),
        reply_context=_reply_context(payload, single),
    )


# ---------------------------------------------------------------------------------------------- event crypto
def event_crypto(settings: Settings) -> DingTalkCrypto:
    with warnings.catch_warnings():
        # dingtalk-sdk 1.3.8: invalid escape sequences in dingtalk/client/api/taobao.py, compiled even by
        # `import dingtalk.crypto` (PLATFORMS.md §5.1).
        warnings.filterwarnings("ignore", "invalid escape sequence", DeprecationWarning)
        warnings.filterwarnings("ignore", "invalid escape sequence", SyntaxWarning)
        from dingtalk.crypto import DingTalkCrypto

    return DingTalkCrypto(settings.dingtalk_event_token, settings.dingtalk_event_aes_key, settings.dingtalk_app_key)


def _decrypt_event(crypto: DingTalkCrypto, signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
    from dingtalk.core.exceptions import InvalidCorpIdOrSuiteKeyException, InvalidSignatureException

    try:
        plaintext: str = crypto.decrypt_encrypt_str(signature, timestamp, nonce, encrypt)
    except InvalidSignatureException:
        raise Rejected(401, "bad event signature") from None
    except InvalidCorpIdOrSuiteKeyException:
        raise Rejected(403, "event for another receiver") from None
    except Exception:
        raise Rejected(400, "cannot decrypt event") from None
    return plaintext


def _encrypted_field(body: bytes) -> str:
    try:
        encrypt = json.loads(body)["encrypt"]
        if not isinstance(encrypt, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise Rejected(400, "malformed event body") from None
    return encrypt


def _event_object(plaintext: str) -> dict[str, Any]:
    try:
        event = json.loads(plaintext)
        if not isinstance(event, dict):
            raise ValueError
    except ValueError:
        raise Rejected(400, "event plaintext is not a JSON object") from None
    return event


# ---------------------------------------------------------------------------------------------- HTTP routes
class DingTalkCallbacks:
    """The HTTP routes; `inbound` is set when the app starts (the routes exist before it does)."""

    def __init__(self, settings: Settings, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.wall_clock = wall_clock
        self.inbound: Inbound | None = None
        self.events_enabled = bool(settings.dingtalk_event_token)
        # dingtalk-sdk (26 MB with the requests stack it imports) is loaded by the first event callback
        # whose signature holds, not at start: event callbacks are rare and a forged one never loads it.
        self._crypto: DingTalkCrypto | None = None

    def routes(self, app: web.Application) -> None:
        if self.settings.dingtalk_mode == "http":
            app.router.add_post("/dingtalk/robot", self.robot_callback)
        if self.events_enabled:
            app.router.add_post("/dingtalk/events", self.event_callback)

    @property
    def crypto(self) -> DingTalkCrypto:
        if self._crypto is None:
            self._crypto = event_crypto(self.settings)
        return self._crypto

    async def robot_callback(self, request: web.Request) -> web.Response:
        inbound = self.inbound
        assert inbound is not None, "DingTalk callbacks before the app started"
        inbound.ack_started()
        try:
            return await self._robot_callback(request, inbound)
        finally:
            inbound.ack_finished()

    async def _robot_callback(self, request: web.Request, inbound: Inbound) -> web.Response:
        try:
            verify_robot_headers(self.settings.dingtalk_app_secret or "", request.headers.get("timestamp"),
                                 request.headers.get("sign"), int(self.wall_clock() * 1000))
            body = await read_body(request)
            try:
                payload = json.loads(body)
            except ValueError:
                raise Rejected(400, "malformed JSON") from None
            parse_robot_message(payload, self.settings)  # reject malformed before acknowledging
        except Rejected as err:
            return rejection(log, "dingtalk robot", err, request.remote)
        # Answer as soon as the message is durably recorded: the command runs after, from the queue, so
        # DingTalk's retry clock never waits on it. If the record cannot be written, say so: DingTalk
        # re-delivers, and the unique row keeps that to one effect.
        try:
            await inbound.accept(payload)
        except Exception:
            log.exception("dingtalk robot: could not record msg_id=%s", payload.get("msgId"))
            return web.json_response({"errcode": 503, "errmsg": "retry later"}, status=503)
        return web.json_response({})

    async def event_callback(self, request: web.Request) -> web.Response:
        assert self.inbound is not None and self.events_enabled
        started = time.monotonic()
        query = request.query
        signature = query.get("signature") or query.get("msg_signature")
        timestamp = query.get("timestamp") or query.get("timeStamp")
        nonce = query.get("nonce")
        try:
            if not (signature and timestamp and nonce):
                raise Rejected(401, "missing signature, timestamp or nonce")
            encrypt = _encrypted_field(await read_body(request))
            token = self.settings.dingtalk_event_token or ""
            expected = hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()
            if not hmac.compare_digest(expected, signature):
                raise Rejected(401, "bad event signature")
            plaintext = _decrypt_event(self.crypto, signature, timestamp, nonce, encrypt)
            event = _event_object(plaintext)
        except Rejected as err:
            return rejection(log, "dingtalk events", err, request.remote)
        raw = plaintext.encode() if isinstance(plaintext, str) else plaintext
        dedup_id = "event:" + hashlib.sha1(raw).hexdigest()
        remaining = EVENT_ANSWER_BUDGET_S - (time.monotonic() - started)
        await self.inbound.within(self.inbound.handle_event(event, dedup_id), max(remaining, 0.05))
        return web.json_response(self.crypto.encrypt_message("success"))
