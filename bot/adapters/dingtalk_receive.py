"""DingTalk (钉钉) receiving: robot callbacks and event subscription (PLATFORMS.md §3).

- `POST /dingtalk/robot` — robot HTTP callbacks. Headers `timestamp` + `sign` =
  base64(HMAC-SHA256(appSecret, f"{timestamp}\\n{appSecret}")) are checked (constant time, within
  `dingtalk_sign_window_s`, ±1 h by default) before the body is parsed. The signature does not cover the
  body: dedup on `msgId` stops a re-delivery from acting twice, and the sign recorded on the inbound row
  a captured (timestamp, sign) pair from carrying another msgId (a forged body) once it is a few seconds
  old (`storage.inbound.SIGN_FRESH_S`). A verified message is recorded
  and answered at once; the command runs after, from `bot.inbound.Inbound`'s queue. Stream mode has
  no such header (the connection is authenticated), hence no replay to refuse.
- Stream mode lives in `bot.adapters.dingtalk_stream` and feeds the same `Inbound`.
- `POST /dingtalk/events` — event subscription (§3c), dingtalk-sdk's `DingTalkCrypto` (imported only when
  event callbacks are configured), answered with the encrypted "success" inside the 1500 ms deadline;
  its `timestamp` (ms) must be within the same window as the robot's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from bot.adapters.common import (
    MAX_TIMESTAMP_DIGITS,
    Rejected,
    read_body,
    rejection,
    same_signature,
    string_field,
    timestamp_value,
)
from bot.adapters.dingtalk_send import PLATFORM, sign
from bot.messages import IncomingMessage, Mention
from bot.settings import Settings

if TYPE_CHECKING:
    from dingtalk.crypto import DingTalkCrypto

    from bot.inbound import Inbound

log = logging.getLogger("salesbot.dingtalk")

DEFAULT_SIGN_WINDOW_S = 3600  # DingTalk documents ±1 h; SALESBOT_DINGTALK_SIGN_WINDOW_S
EVENT_ANSWER_BUDGET_S = 1.2  # 1500 ms deadline for the answer; keep a margin for encrypting and sending it


# ---------------------------------------------------------------------------------------------- verifying
def verify_robot_headers(secret: str, timestamp: str | None, signature: str | None, now_ms: int,
                         window_s: int = DEFAULT_SIGN_WINDOW_S) -> int:
    """The callback's timestamp (ms) once its headers hold: digits, within `window_s`, signed."""
    if not timestamp or not signature:
        raise Rejected(401, "missing timestamp or sign header")
    ts = timestamp_value(timestamp)
    if abs(now_ms - ts) > window_s * 1000:
        raise Rejected(403, f"timestamp more than {window_s} s off")
    if not same_signature(sign(secret, timestamp), signature):
        raise Rejected(401, "bad signature")
    return ts


# ---------------------------------------------------------------------------------------------- parsing
# Limits are those of the columns the values end up in (storage/models.py): inbound_messages.msg_id,
# teams.chat_id, members.user_id and name, teams.name, organisations.corp_key. A value past them (or of
# another type) is refused before anything is written, rather than failing the INSERT with a 503 that
# DingTalk would re-deliver for ever.
MSG_ID_MAX = 191
CHAT_ID_MAX = 191
USER_ID_MAX = 128
NICK_MAX = 64
TITLE_MAX = 128
ORG_KEY_MAX = 128


def _required(payload: dict[str, Any]) -> tuple[str, str, str]:
    """msgId, conversationId and the sender, or a 400."""
    msg_id = string_field(payload, "msgId", MSG_ID_MAX)
    conversation_id = string_field(payload, "conversationId", CHAT_ID_MAX)
    sender = string_field(payload, "senderStaffId", USER_ID_MAX) or string_field(payload, "senderId", USER_ID_MAX)
    if not sender or not msg_id or not conversation_id:
        raise Rejected(400, "missing sender, msgId or conversationId")
    return msg_id, conversation_id, sender


def _text(payload: dict[str, Any]) -> str:
    text_part = payload.get("text")
    if text_part is not None and not isinstance(text_part, dict):
        raise Rejected(400, "text is not an object")
    text = text_part.get("content", "") if text_part else ""
    if not isinstance(text, str):
        raise Rejected(400, "text.content is not a string")
    return text


def _mentions(payload: dict[str, Any]) -> tuple[Mention, ...]:
    """Who was @-mentioned, the robot itself left out."""
    bot_id = payload.get("chatbotUserId")
    at_users = payload.get("atUsers") or []
    if not isinstance(at_users, list):
        raise Rejected(400, "atUsers is not a list")
    return tuple(
        Mention(user_id=u["staffId"])
        for u in at_users
        if isinstance(u, dict) and isinstance(u.get("staffId"), str) and 0 < len(u["staffId"]) <= USER_ID_MAX
        and u.get("dingtalkId") != bot_id
    )


def _expires_at(value: Any) -> int:
    """sessionWebhookExpiredTime (ms) as an int; 0 when absent or malformed (the webhook is then not used)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value and len(value) <= MAX_TIMESTAMP_DIGITS and value.isascii() and value.isdigit():
        return int(value)
    return 0


def _reply_context(payload: dict[str, Any], single: bool) -> dict[str, Any]:
    webhook = payload.get("sessionWebhook")
    return {
        "session_webhook": webhook if isinstance(webhook, str) else None,
        "expires_at": _expires_at(payload.get("sessionWebhookExpiredTime")),
        "conversation_type": "1" if single else "2",
    }


def parse_robot_message(payload: Any, settings: Settings) -> IncomingMessage:
    """The robot callback JSON (HTTP body or Stream `data`, §3a) → IncomingMessage, or a 400 for a field
    of the wrong type or size."""
    if not isinstance(payload, dict):
        raise Rejected(400, "body is not a JSON object")
    msg_id, conversation_id, sender = _required(payload)
    text = _text(payload)
    conversation_type = payload.get("conversationType", "2")
    if not isinstance(conversation_type, (str, int)) or isinstance(conversation_type, bool):
        raise Rejected(400, "conversationType is not a string")
    single = str(conversation_type) == "1"
    nick = string_field(payload, "senderNick", NICK_MAX)
    title = string_field(payload, "conversationTitle", TITLE_MAX)
    org_key = (string_field(payload, "senderCorpId", ORG_KEY_MAX) or string_field(payload, "chatbotCorpId", ORG_KEY_MAX)
               or settings.dingtalk_app_key)
    return IncomingMessage(
        platform=PLATFORM,
        org_key=str(org_key),
        chat_id=conversation_id,
        chat_title=title or (f"{nick or sender} 的私聊" if single else None),
        chat_type="single" if single else "group",
        user_id=sender,
        user_name=nick,
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
    except (ValueError, KeyError, TypeError, RecursionError):
        raise Rejected(400, "malformed event body") from None
    return encrypt


def _event_object(plaintext: str) -> dict[str, Any]:
    try:
        event = json.loads(plaintext)
        if not isinstance(event, dict):
            raise ValueError
    except (ValueError, RecursionError):
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
        headers = request.headers
        try:
            verify_robot_headers(self.settings.dingtalk_app_secret or "", headers.get("timestamp"),
                                             headers.get("sign"), int(self.wall_clock() * 1000),
                                             self.settings.dingtalk_sign_window_s)
            body = await read_body(request)
            try:
                payload = orjson.loads(body)  # stricter than json: a lone surrogate is malformed, not a 503 later
            except orjson.JSONDecodeError:
                raise Rejected(400, "malformed JSON") from None
            msg = parse_robot_message(payload, self.settings)  # reject malformed before acknowledging
        except Rejected as err:
            return rejection(log, "dingtalk robot", err, request.remote)
        # Answer as soon as the message is durably recorded: the command runs after, from the queue, so
        # DingTalk's retry clock never waits on it. If the record cannot be written, say so: DingTalk
        # re-delivers, and the unique row keeps that to one effect.
        try:
            # The signature covers only the timestamp: the sign rides along on the inbound row, and the
            # command refuses a message whose pair was first used more than a few seconds earlier (a
            # captured header replayed with a forged body; storage.inbound). Genuine messages signed in
            # the same millisecond arrive together and all run.
            await inbound.accept(payload, sign=headers["sign"], msg=msg)
        except Exception:
            log.exception("dingtalk robot: could not record msg_id=%s", msg.msg_id)
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
            window_s = self.settings.dingtalk_sign_window_s
            if abs(self.wall_clock() * 1000 - timestamp_value(timestamp)) > window_s * 1000:
                raise Rejected(403, f"timestamp more than {window_s} s off")
            encrypt = _encrypted_field(await read_body(request))
            token = self.settings.dingtalk_event_token or ""
            signed = "".join(sorted([token, timestamp, nonce, encrypt])).encode("utf-8", "replace")
            if not same_signature(hashlib.sha1(signed).hexdigest(), signature):
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
