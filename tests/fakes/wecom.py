"""A fake WeCom (企业微信) platform for salesbot's end-to-end tests.

`FakeWeCom` is an aiohttp application on ``127.0.0.1`` with an OS-assigned port. It models the parts of
WeCom the bot talks to, following /work/shared/PLATFORMS.md (cited as "§n" below):

* ``GET  /cgi-bin/gettoken``          app access token (§2b)
* ``POST /cgi-bin/message/send``      app message to members (§2c)
* ``POST /cgi-bin/webhook/send``      group-robot webhook (§2a), 20 msgs / 60 s sliding window per key
* ``POST /cgi-bin/aibot/response``    the AI bot's one-shot ``response_url`` (§1a, "Active reply")
* ``GET  /ws``                        AI-bot long-connection (WebSocket) mode (§1a, "Long-connection")

and it *builds* the signed + encrypted callbacks WeCom would POST to the bot (AI bot JSON, §1a; self-built
app XML, §1b) and checks the bot's encrypted passive replies. The crypto is an independent
implementation of the WXBizMsgCrypt envelope (§0), checked in tests against the official vectors (§6 V1/V3),
so a bug shared with wechatpy inside the bot would still be caught.

Platform quirks worth knowing when reading the tests:

* Every API answers **HTTP 200** with an ``errcode`` in the JSON body, also for errors. Real ``errmsg``
  strings carry a per-request ``hint`` and a devtool link, so the fake appends them too — match on
  ``errcode``, never on ``errmsg``.
* Within its validity, ``gettoken`` returns the *same* token again (Doc 91039); a forced or natural
  expiry makes old tokens answer ``42001`` and the next ``gettoken`` mint a new one. Unknown tokens
  answer ``40014``.
* Byte limits are UTF-8 bytes, not characters (one Chinese character = 3 bytes).
* Per-member app quotas (30/min, 1000/h) are enforced like the real platform: excess deliveries are
  **silently dropped** with ``errcode 0`` (§2c) — see `delivered_to` / `dropped_app_deliveries`.
* Errcodes PLATFORMS.md does not pin down are module constants marked *[unverified]*; they come from
  real responses quoted in public issue trackers. Code against the named constants, not the numbers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import secrets
import struct
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from aiohttp import WSCloseCode, WSMsgType, web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "FakeWeCom",
    "RecordedRequest",
    "WeComCrypto",
    "WeComCryptoError",
    "ERR_OK",
    "ERR_BUSY",
    "ERR_INVALID_SECRET",
    "ERR_INVALID_MSGTYPE",
    "ERR_INVALID_CORPID",
    "ERR_INVALID_TOKEN",
    "ERR_INVALID_AGENTID",
    "ERR_INVALID_PARAMETER",
    "ERR_MISSING_TOKEN",
    "ERR_MISSING_CORPID",
    "ERR_MISSING_SECRET",
    "ERR_MISSING_AGENTID",
    "ERR_TOKEN_EXPIRED",
    "ERR_EMPTY_CONTENT",
    "ERR_CONTENT_TOO_LARGE",
    "ERR_FREQ_LIMIT",
    "ERR_ALL_RECIPIENTS_INVALID",
    "ERR_INVALID_WEBHOOK_URL",
    "ERR_RESPONSE_URL_INVALID",
    "ERR_WS_AUTH_FAILED",
    "ERR_WS_INVALID_REQ_ID",
    "GETTOKEN_PATH",
    "APP_SEND_PATH",
    "WEBHOOK_PATH",
    "RESPONSE_URL_PATH",
    "WS_PATH",
]

T = TypeVar("T")

# --------------------------------------------------------------------------------------------------
# Error codes. WeCom global error list (Doc 90313) as summarised in PLATFORMS.md §2a-§2c unless noted.
# --------------------------------------------------------------------------------------------------
ERR_OK = 0
ERR_BUSY = -1  # "system busy" — retry (≤3), §2a
ERR_INVALID_SECRET = 40001  # bad corpsecret / credential, §2b
ERR_INVALID_MSGTYPE = 40008  # §2a
ERR_INVALID_IMAGE_SIZE = 40009  # [unverified vs PLATFORMS.md] WeCom global list: 图片文件大小不合法
ERR_INVALID_CORPID = 40013  # [unverified vs PLATFORMS.md] WeCom global list: 不合法的CorpID
ERR_INVALID_TOKEN = 40014  # §2b
ERR_INVALID_AGENTID = 40056  # [unverified vs PLATFORMS.md] WeCom global list: 不合法的agentid
#: Generic "invalid Request Parameter". Real webhook answer for over-long markdown is
#: ``40058 markdown.content exceed max length 4096. invalid Request Parameter, hint: ...`` (observed in
#: several public issue reports); the fake also uses it for unparsable JSON bodies.
ERR_INVALID_PARAMETER = 40058
ERR_MISSING_TOKEN = 41001  # [unverified vs PLATFORMS.md] WeCom global list: 缺少access_token参数
ERR_MISSING_CORPID = 41002  # [unverified vs PLATFORMS.md] 缺少corpid参数
ERR_MISSING_SECRET = 41004  # [unverified vs PLATFORMS.md] 缺少secret参数
ERR_MISSING_AGENTID = 41011  # [unverified vs PLATFORMS.md] 缺少agentid参数
ERR_TOKEN_EXPIRED = 42001  # §2b
ERR_EMPTY_CONTENT = 44004  # §2a
#: App ``message/send`` over the 2048-byte text/markdown limit (§2c gives the limit only). [unverified]
#: Real answer observed in public reports: ``45002 content size out of limit``.
ERR_CONTENT_TOO_LARGE = 45002
ERR_FREQ_LIMIT = 45009  # webhook 20/min, §2a
ERR_ALL_RECIPIENTS_INVALID = 81013  # §2c
ERR_INVALID_WEBHOOK_URL = 93000  # unknown key / robot removed from group — permanent, §2a
#: Reusing or letting expire an AI-bot ``response_url`` (§1a says "usable once, valid 1 hour" but names
#: no errcode). [unverified] — treat ANY non-zero errcode from a response_url as "spent, fall back".
ERR_RESPONSE_URL_INVALID = ERR_INVALID_PARAMETER
#: Long-connection ``aibot_subscribe`` with a wrong bot_id/secret. [unverified; one public observation:
#: ``853000 invalid bot_id or secret``]
ERR_WS_AUTH_FAILED = 853000
#: ``aibot_respond_msg`` for an unknown req_id or one older than ~5 min (§1a). [unverified]
ERR_WS_INVALID_REQ_ID = ERR_INVALID_PARAMETER

_ERRMSG: dict[int, str] = {
    ERR_OK: "ok",
    ERR_BUSY: "system busy",
    ERR_INVALID_SECRET: "invalid credential",
    ERR_INVALID_MSGTYPE: "invalid message type",
    ERR_INVALID_CORPID: "invalid corpid",
    ERR_INVALID_TOKEN: "invalid access_token",
    ERR_INVALID_AGENTID: "invalid agentid",
    ERR_INVALID_PARAMETER: "invalid Request Parameter",
    ERR_MISSING_TOKEN: "access_token missing",
    ERR_MISSING_CORPID: "corpid missing",
    ERR_MISSING_SECRET: "corpsecret missing",
    ERR_MISSING_AGENTID: "agentid missing",
    ERR_TOKEN_EXPIRED: "access_token expired",
    ERR_EMPTY_CONTENT: "empty content",
    ERR_CONTENT_TOO_LARGE: "content size out of limit",
    ERR_FREQ_LIMIT: "api freq out of limit",
    ERR_ALL_RECIPIENTS_INVALID: "all touser/toparty/totag invalid",
    ERR_INVALID_WEBHOOK_URL: "invalid webhook url",
    ERR_WS_AUTH_FAILED: "invalid bot_id or secret",
}

# Paths (the real host is https://qyapi.weixin.qq.com; the bot swaps it for `base_url`).
GETTOKEN_PATH = "/cgi-bin/gettoken"
APP_SEND_PATH = "/cgi-bin/message/send"
WEBHOOK_PATH = "/cgi-bin/webhook/send"
RESPONSE_URL_PATH = "/cgi-bin/aibot/response"
WS_PATH = "/ws"

# Message types accepted per endpoint (§2a, §2c, §1a).
_WEBHOOK_MSGTYPES = frozenset(
    {"text", "markdown", "markdown_v2", "image", "news", "file", "voice", "template_card"}
)
_APP_MSGTYPES = frozenset(
    {
        "text", "image", "voice", "video", "file", "textcard", "news", "mpnews", "markdown",
        "miniprogram_notice", "template_card",
    }
)
_RESPONSE_URL_MSGTYPES = frozenset({"markdown", "template_card"})
_WS_REPLY_CMDS = frozenset({"aibot_respond_msg", "aibot_respond_welcome_msg", "aibot_respond_update_msg"})

_DEFAULT_AIBOT_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
_DEFAULT_APP_AES_KEY = "GFEDCBA9876543210zyxwvutsrqponmlkjihgfedcba"


# --------------------------------------------------------------------------------------------------
# Crypto (§0)
# --------------------------------------------------------------------------------------------------
class WeComCryptoError(AssertionError):
    """Bad signature / undecryptable payload / wrong receiveid.

    Subclasses `AssertionError` so that a malformed reply from the bot fails the test that checks it.
    """


class WeComCrypto:
    """WXBizMsgCrypt envelope, written from the spec in PLATFORMS.md §0 (not wrapping wechatpy).

    * ``AESKey = b64decode(EncodingAESKey + "=")`` (32 bytes), AES-256-CBC, ``IV = AESKey[:16]``;
    * PKCS#7 padding to a **32-byte** block (decoders accept any pad 1..32);
    * plaintext = ``random(16) || len(msg) as 4-byte big-endian || msg || receiveid``;
    * signature = ``sha1("".join(sorted([token, timestamp, nonce, encrypt])))`` as lowercase hex.

    ``receive_id`` is the CorpID for self-built apps and ``""`` for the AI bot (§0, Doc 101033).
    """

    BLOCK_SIZE = 32

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("EncodingAESKey must be exactly 43 characters")
        key = base64.b64decode(encoding_aes_key + "=")
        if len(key) != 32:
            raise ValueError("EncodingAESKey must decode to 32 bytes")
        self.token = token
        self.receive_id = receive_id
        self._key = key
        self._iv = key[:16]

    def sign(self, timestamp: str | int, nonce: str | int, encrypt: str) -> str:
        """The ``msg_signature`` over (token, timestamp, nonce, encrypt)."""
        parts = sorted([self.token, str(timestamp), str(nonce), encrypt])
        return hashlib.sha1("".join(parts).encode("utf-8")).hexdigest()

    def verify(self, signature: str, timestamp: str | int, nonce: str | int, encrypt: str) -> None:
        """Raise `WeComCryptoError` unless *signature* matches (constant-time compare)."""
        expected = self.sign(timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected.encode(), str(signature).encode()):
            raise WeComCryptoError(f"bad signature {signature!r} (expected {expected!r})")

    def encrypt(self, plaintext: str | bytes, *, random_prefix: bytes | None = None) -> str:
        """Encrypt to the base64 ``Encrypt`` string. *random_prefix* (16 bytes) only for fixed vectors."""
        msg = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        prefix = secrets.token_hex(8).encode("ascii") if random_prefix is None else random_prefix
        if len(prefix) != 16:
            raise ValueError("random_prefix must be 16 bytes")
        raw = prefix + struct.pack(">I", len(msg)) + msg + self.receive_id.encode("utf-8")
        pad = self.BLOCK_SIZE - len(raw) % self.BLOCK_SIZE
        raw += bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._iv)).encryptor()
        return base64.b64encode(encryptor.update(raw) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypt: str) -> bytes:
        """Decrypt an ``Encrypt`` string and check the trailing receiveid; returns the message bytes."""
        try:
            data = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise WeComCryptoError(f"Encrypt is not valid base64: {exc}") from None
        if not data or len(data) % 16:
            raise WeComCryptoError("ciphertext length is not a multiple of the AES block size")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._iv)).decryptor()
        raw = decryptor.update(data) + decryptor.finalize()
        pad = raw[-1]
        if not 1 <= pad <= self.BLOCK_SIZE or raw[-pad:] != bytes([pad]) * pad:
            raise WeComCryptoError("bad PKCS#7 padding (wrong AES key?)")
        raw = raw[:-pad]
        if len(raw) < 20:
            raise WeComCryptoError("plaintext too short")
        (length,) = struct.unpack(">I", raw[16:20])
        if 20 + length > len(raw):
            raise WeComCryptoError("message length field exceeds plaintext (wrong AES key?)")
        msg, receive_id = raw[20 : 20 + length], raw[20 + length :]
        if receive_id != self.receive_id.encode("utf-8"):
            raise WeComCryptoError(
                f"receiveid mismatch: got {receive_id!r}, expected {self.receive_id!r}"
            )
        return msg

    def open(self, signature: str, timestamp: str | int, nonce: str | int, encrypt: str) -> bytes:
        """Verify then decrypt (the order the platform requires: reject before decrypting)."""
        self.verify(signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)


# --------------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------------
@dataclass
class RecordedRequest:
    """One request (or WebSocket frame) the fake received, with the errcode it answered."""

    path: str
    query: dict[str, str]
    json: Any
    time: float  # `clock()` at receipt
    method: str = "POST"  # "GET" / "POST" / "WS" (an inbound WebSocket frame)
    body: str = ""  # raw body text
    errcode: int | None = None  # errcode the fake answered (None: no errcode, e.g. unknown path)


@dataclass
class _ForcedFailure:
    errcode: int
    errmsg: str | None
    remaining: int | None  # None = unlimited count
    until: float | None  # clock() deadline; None = no deadline

    def active(self, now: float) -> bool:
        return (self.remaining is None or self.remaining > 0) and (self.until is None or now < self.until)

    def consume(self) -> None:
        if self.remaining is not None:
            self.remaining -= 1


@dataclass
class _ResponseCode:
    created: float
    used: bool = False


@dataclass(eq=False)
class _WsConn:
    ws: web.WebSocketResponse
    subscribed: bool = False


@dataclass
class _Answer:
    errcode: int
    errmsg: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _cdata(text: str) -> str:
    """Wrap *text* in CDATA, splitting any ``]]>`` it contains."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _image_problem(image: dict[str, Any], max_bytes: int) -> _Answer | None:
    """What the webhook says about an `image` object (§2a): base64 of a JPG/PNG of at most 2 MB whose
    md5 (hex, of the raw bytes) is given alongside; None when it is acceptable."""
    encoded, md5 = image.get("base64"), image.get("md5")
    if not isinstance(encoded, str) or not isinstance(md5, str) or not encoded:
        return _Answer(ERR_INVALID_PARAMETER, "missing image.base64 or image.md5. invalid Request Parameter")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        return _Answer(ERR_INVALID_PARAMETER, "image.base64 is not base64. invalid Request Parameter")
    if len(raw) > max_bytes:
        return _Answer(ERR_INVALID_IMAGE_SIZE, f"image size {len(raw)} exceed max {max_bytes}")
    if hashlib.md5(raw, usedforsecurity=False).hexdigest() != md5.lower():
        return _Answer(ERR_INVALID_PARAMETER, "image.md5 does not match image.base64. invalid Request Parameter")
    if not raw.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")):
        return _Answer(ERR_INVALID_PARAMETER, "image is neither JPG nor PNG. invalid Request Parameter")
    return None


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


# --------------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------------
class FakeWeCom:
    """A fake WeCom server plus callback builders. Use as ``async with FakeWeCom(...) as wecom:``.

    All time-based behaviour (token TTL, webhook window, response_url TTL, forced-failure periods,
    member quotas, WS req_id TTL) uses the injectable *clock* (monotonic seconds); timestamps placed in
    callbacks (``timestamp`` query param, ``CreateTime``, ``create_time``) use *wall_clock* (epoch seconds).
    """

    TOKEN_TTL = 7200.0  # §2b
    WEBHOOK_RATE_LIMIT = 20  # messages per key per window, §2a
    WEBHOOK_RATE_WINDOW = 60.0  # sliding window (the real window semantics are unknown, §9.7)
    WEBHOOK_TEXT_MAX_BYTES = 2048  # §2a
    WEBHOOK_MARKDOWN_MAX_BYTES = 4096  # markdown and markdown_v2, §2a
    WEBHOOK_IMAGE_MAX_BYTES = 2 * 1024 * 1024  # image: raw bytes before base64, JPG/PNG, §2a
    APP_CONTENT_MAX_BYTES = 2048  # text and markdown, §2c
    APP_MEMBER_PER_MINUTE = 30  # per app per member, excess silently dropped, §2c
    APP_MEMBER_PER_HOUR = 1000
    RESPONSE_URL_TTL = 3600.0  # §1a
    WS_REQ_ID_TTL = 300.0  # a callback req_id is reply-able for ~5 min, §1a

    def __init__(
        self,
        *,
        corp_id: str = "wwcorp",
        corp_secret: str = "sec",
        aibot_token: str = "T",
        aibot_aes_key: str = _DEFAULT_AIBOT_AES_KEY,
        app_token: str = "T2",
        app_aes_key: str = _DEFAULT_APP_AES_KEY,
        agent_id: int = 1000002,
        aibot_id: str = "aibFakeSalesBot",
        aibot_secret: str = "aibot-secret",
        webhook_keys: Iterable[str] = (),
        known_users: Iterable[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
    ) -> None:
        """Configure the fake corp.

        *known_users*: member userids that exist; ``None`` (default) means every userid exists.
        *aibot_id* / *aibot_secret*: the AI bot's id (``aibotid`` in callbacks) and its long-connection
        (WebSocket) secret.
        """
        self.corp_id = corp_id
        self.corp_secret = corp_secret
        self.agent_id = agent_id
        self.aibot_id = aibot_id
        self.aibot_secret = aibot_secret
        self.known_users: set[str] | None = None if known_users is None else set(known_users)
        self.aibot_crypto = WeComCrypto(aibot_token, aibot_aes_key, "")
        self.app_crypto = WeComCrypto(app_token, app_aes_key, corp_id)
        self._clock = clock
        self._wall_clock = wall_clock
        self._host = host

        self.received: list[RecordedRequest] = []
        self.token_requests = 0
        #: Plaintext payloads of every AI-bot callback built (HTTP or WS), newest last.
        self.sent_aibot_callbacks: list[dict[str, Any]] = []
        #: Plaintext XML of every app callback built, newest last.
        self.sent_app_callbacks: list[str] = []
        #: (userid, message body) pairs dropped by the per-member quota (the API still said errcode 0).
        self.dropped_app_deliveries: list[tuple[str, dict[str, Any]]] = []
        #: Number of successful ``aibot_subscribe`` handshakes so far (grows on every reconnect).
        self.ws_subscriptions = 0

        self._tokens: dict[str, float] = {}  # token -> expiry (clock)
        self._revoked: set[str] = set()
        self._current_token: str | None = None
        self._webhook_keys: set[str] = set(webhook_keys)
        self._webhook_sent: dict[str, deque[float]] = {}
        self._webhook_failures: dict[str, _ForcedFailure] = {}
        self._webhook_stalls: dict[str, asyncio.Event] = {}
        self._forced: dict[str, list[_ForcedFailure]] = {}
        self._response_codes: dict[str, _ResponseCode] = {}
        self._member_sends: dict[str, deque[float]] = {}
        self._deliveries: dict[str, list[dict[str, Any]]] = {}
        self._ws_conns: set[_WsConn] = set()
        self._ws_active: _WsConn | None = None
        self._ws_callbacks: dict[str, float] = {}  # callback req_id -> clock() when pushed

        #: (method, path) of every request answered with a forced redirect (`redirect_next`), oldest first.
        self.redirected: list[tuple[str, str]] = []
        self._redirects: dict[str, deque[tuple[str, int]]] = {}

        self._cond = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> FakeWeCom:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start serving on ``host`` with port 0 (the OS picks a free port)."""
        # Bodies up to a 2 MB picture in base64 (§2a): the size rule is the webhook's own check, not aiohttp's.
        app = web.Application(middlewares=[self._redirect_middleware], client_max_size=4 * 1024 * 1024)
        app.router.add_get(GETTOKEN_PATH, self._h_gettoken)
        app.router.add_post(APP_SEND_PATH, self._h_app_send)
        app.router.add_post(WEBHOOK_PATH, self._h_webhook)
        app.router.add_post(RESPONSE_URL_PATH, self._h_response_url)
        app.router.add_get(WS_PATH, self._h_ws)
        app.router.add_route("*", "/{tail:.*}", self._h_unknown)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, 0)
        await site.start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._base_url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Close open WebSockets and stop the server. Idempotent."""
        for conn in list(self._ws_conns):
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` — the bot's ``SALESBOT_WECOM_API_BASE``."""
        if self._base_url is None:
            raise RuntimeError("FakeWeCom is not started (use `async with FakeWeCom(...)`)")
        return self._base_url

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:<port>/ws`` — stands in for ``wss://openws.work.weixin.qq.com``."""
        return "ws" + self.base_url.removeprefix("http") + WS_PATH

    @property
    def webhook_base(self) -> str:
        """``{base_url}/cgi-bin/webhook/send?key=`` — append a key to get a full webhook URL."""
        return f"{self.base_url}{WEBHOOK_PATH}?key="

    def webhook_url(self, key: str) -> str:
        """Full webhook URL for *key* (as WeCom shows it in the group-robot settings)."""
        return self.webhook_base + key

    # ------------------------------------------------------------------ waiting
    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Await until ``predicate()`` is truthy; return its value.

        The predicate is re-evaluated whenever the fake receives a request or WebSocket frame, or a WS
        connection opens/closes (an `asyncio.Condition` is notified — no sleeping/polling). Raises
        `TimeoutError` after *timeout* seconds of real time.
        """
        async with self._cond:
            try:
                async with asyncio.timeout(timeout):
                    return await self._cond.wait_for(predicate)
            except TimeoutError:
                recent = ", ".join(
                    f"{r.method} {r.path}->{r.errcode}" for r in self.received[-8:]
                ) or "nothing"
                raise TimeoutError(
                    f"FakeWeCom.wait_for: predicate still false after {timeout}s; last requests: {recent}"
                ) from None

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ test controls
    def expire_tokens(self) -> None:
        """Expire every issued access token now: old tokens answer 42001; next gettoken mints a new one."""
        self._revoked.update(self._tokens)
        self._current_token = None

    @property
    def current_token(self) -> str | None:
        """The token gettoken would hand out now (None if none is valid)."""
        token = self._current_token
        if token is None or self._token_status(token) != ERR_OK:
            return None
        return token

    def add_webhook_key(self, key: str) -> None:
        """Register a group-robot webhook key (full URL: `webhook_url`)."""
        self._webhook_keys.add(key)

    def remove_webhook_key(self, key: str) -> None:
        """Simulate the robot being removed from its group: the key answers 93000 from now on."""
        self._webhook_keys.discard(key)

    def fail_webhook(
        self,
        key: str,
        errcode: int = ERR_FREQ_LIMIT,
        *,
        for_seconds: float | None = None,
        count: int | None = None,
        errmsg: str | None = None,
    ) -> None:
        """Force webhook sends on *key* to answer *errcode*.

        For *for_seconds* of `clock` time and/or the next *count* requests (whichever ends first); with
        neither, until `clear_webhook_failure`. Forced failures do not use up the rate-limit window.
        """
        until = None if for_seconds is None else self._clock() + for_seconds
        self._webhook_failures[key] = _ForcedFailure(errcode, errmsg, count, until)

    def clear_webhook_failure(self, key: str) -> None:
        """Cancel a `fail_webhook`."""
        self._webhook_failures.pop(key, None)

    def fail_next(
        self,
        path: str,
        errcode: int,
        *,
        count: int = 1,
        for_seconds: float | None = None,
        errmsg: str | None = None,
    ) -> None:
        """Force the next *count* calls of *path* (e.g. ``"/cgi-bin/message/send"``, ``"/cgi-bin/gettoken"``,
        ``"/cgi-bin/aibot/response"``) to answer *errcode* (e.g. ``ERR_BUSY``). Checked after the token.
        """
        until = None if for_seconds is None else self._clock() + for_seconds
        self._forced.setdefault(path, []).append(_ForcedFailure(errcode, errmsg, count, until))

    def redirect_next(self, path: str, to_base: str, *, status: int = 307, count: int = 1) -> None:
        """Answer the next *count* requests to *path* (any method, the WebSocket upgrade too) with *status*
        and ``Location: <to_base><the request's path and query>`` — as a hijacked or misconfigured host
        would. The request is not handled (nothing is delivered, no response_url is spent)."""
        self._redirects.setdefault(path, deque()).extend([(to_base.rstrip("/"), status)] * count)

    @web.middleware
    async def _redirect_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        queue = self._redirects.get(request.path)
        if not queue:
            return await handler(request)  # type: ignore[no-any-return]
        to_base, status = queue.popleft()
        await request.read()
        self.redirected.append((request.method, request.path))
        await self._notify()
        return web.Response(status=status, headers={"Location": to_base + request.path_qs})

    def new_response_url(self) -> str:
        """Mint a one-shot AI-bot ``response_url`` (usable once, valid `RESPONSE_URL_TTL` by `clock`)."""
        code = secrets.token_urlsafe(24)
        self._response_codes[code] = _ResponseCode(created=self._clock())
        return f"{self.base_url}{RESPONSE_URL_PATH}?response_code={code}"

    # ------------------------------------------------------------------ accessors
    def webhook_messages(self, key: str) -> list[dict[str, Any]]:
        """Bodies accepted (errcode 0) on webhook *key*, oldest first."""
        return [
            r.json
            for r in self.received
            if r.path == WEBHOOK_PATH and r.query.get("key") == key and r.errcode == ERR_OK
        ]

    def app_messages(self) -> list[dict[str, Any]]:
        """Bodies accepted (errcode 0) by ``message/send``, oldest first."""
        return [r.json for r in self.received if r.path == APP_SEND_PATH and r.errcode == ERR_OK]

    def delivered_to(self, user_id: str) -> list[dict[str, Any]]:
        """App messages actually delivered to member *user_id* (after the silent per-member quota).

        ``touser="@all"`` deliveries are filed under ``"@all"``.
        """
        return list(self._deliveries.get(user_id, []))

    def response_url_messages(self, response_url: str | None = None) -> list[dict[str, Any]]:
        """Bodies accepted on response_urls (optionally only the one for *response_url*)."""
        code = None
        if response_url is not None:
            code = parse_qs(urlsplit(response_url).query).get("response_code", [""])[0]
        return [
            r.json
            for r in self.received
            if r.path == RESPONSE_URL_PATH
            and r.errcode == ERR_OK
            and (code is None or r.query.get("response_code") == code)
        ]

    def ws_frames(self, cmd: str | None = None) -> list[dict[str, Any]]:
        """WebSocket frames received from the bot (optionally only those with ``cmd``), oldest first."""
        return [
            r.json for r in self.received if r.method == "WS" and (cmd is None or r.json.get("cmd") == cmd)
        ]

    def ws_replies(self, req_id: str | None = None) -> list[dict[str, Any]]:
        """Accepted ``aibot_respond_msg`` frames (optionally for one callback *req_id*)."""
        return [
            r.json
            for r in self.received
            if r.method == "WS"
            and r.errcode == ERR_OK
            and r.json.get("cmd") == "aibot_respond_msg"
            and (req_id is None or r.json.get("headers", {}).get("req_id") == req_id)
        ]

    def ws_sent_messages(self, chatid: str | None = None) -> list[dict[str, Any]]:
        """Bodies of accepted ``aibot_send_msg`` frames (optionally for one *chatid*)."""
        return [
            r.json.get("body", {})
            for r in self.received
            if r.method == "WS"
            and r.errcode == ERR_OK
            and r.json.get("cmd") == "aibot_send_msg"
            and (chatid is None or r.json.get("body", {}).get("chatid") == chatid)
        ]

    @property
    def ws_connected(self) -> bool:
        """True while a WebSocket client is connected *and* subscribed."""
        return self._ws_active is not None and not self._ws_active.ws.closed

    # ------------------------------------------------------------------ HTTP plumbing
    async def _record(self, request: web.Request) -> RecordedRequest:
        text = await request.text() if request.can_read_body else ""
        parsed: Any = None
        if text:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
        return RecordedRequest(
            path=request.path,
            query=dict(request.query),
            json=parsed,
            time=self._clock(),
            method=request.method,
            body=text,
        )

    async def _finish(self, rec: RecordedRequest, answer: _Answer) -> web.Response:
        rec.errcode = answer.errcode
        self.received.append(rec)
        await self._notify()
        return web.json_response(self._payload(answer))

    def _payload(self, answer: _Answer) -> dict[str, Any]:
        msg = answer.errmsg or _ERRMSG.get(answer.errcode, "error")
        if answer.errcode != ERR_OK:
            # Real errmsgs look like "<msg>, hint: [..], from ip: .., more info at <devtool link>".
            msg = (
                f"{msg}, hint: [{int(self._wall_clock())}_{secrets.token_hex(6)}], from ip: 127.0.0.1, "
                f"more info at https://open.work.weixin.qq.com/devtool/query?e={answer.errcode}"
            )
        return {"errcode": answer.errcode, "errmsg": msg, **answer.extra}

    def _take_forced(self, path: str) -> _Answer | None:
        now = self._clock()
        queue = self._forced.get(path, [])
        queue[:] = [f for f in queue if f.active(now)]
        if not queue:
            return None
        failure = queue[0]
        failure.consume()
        return _Answer(failure.errcode, failure.errmsg)

    def _token_status(self, token: str | None) -> int:
        if not token:
            return ERR_MISSING_TOKEN
        expiry = self._tokens.get(token)
        if expiry is None:
            return ERR_INVALID_TOKEN
        if token in self._revoked or self._clock() >= expiry:
            return ERR_TOKEN_EXPIRED
        return ERR_OK

    # ------------------------------------------------------------------ GET /cgi-bin/gettoken
    async def _h_gettoken(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        self.token_requests += 1
        return await self._finish(rec, self._gettoken(rec.query))

    def _gettoken(self, query: dict[str, str]) -> _Answer:
        forced = self._take_forced(GETTOKEN_PATH)
        if forced:
            return forced
        corpid, secret = query.get("corpid", ""), query.get("corpsecret", "")
        if not corpid:
            return _Answer(ERR_MISSING_CORPID)
        if corpid != self.corp_id:
            return _Answer(ERR_INVALID_CORPID)
        if not secret:
            return _Answer(ERR_MISSING_SECRET)
        if secret != self.corp_secret:
            return _Answer(ERR_INVALID_SECRET)
        now = self._clock()
        token = self.current_token
        if token is None:
            # Real tokens are opaque strings of up to 512 bytes.
            token = secrets.token_urlsafe(64)
            self._tokens[token] = now + self.TOKEN_TTL
            self._current_token = token
        # "有效期内重复获取返回相同结果" (Doc 91039): same token while valid; remaining lifetime reported.
        expires_in = max(1, int(self._tokens[token] - now))
        return _Answer(ERR_OK, extra={"access_token": token, "expires_in": expires_in})

    # ------------------------------------------------------------------ POST /cgi-bin/message/send
    async def _h_app_send(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        return await self._finish(rec, self._app_send(rec))

    def _app_send(self, rec: RecordedRequest) -> _Answer:
        status = self._token_status(rec.query.get("access_token"))
        if status != ERR_OK:
            return _Answer(status)
        forced = self._take_forced(APP_SEND_PATH)
        if forced:
            return forced
        body = rec.json
        if not isinstance(body, dict):
            return _Answer(ERR_INVALID_PARAMETER, "invalid json body. invalid Request Parameter")
        rejected = self._app_body_error(body)
        if rejected:
            return rejected

        valid, invalid = self._app_recipients(body)
        has_party_or_tag = bool(body.get("toparty")) or bool(body.get("totag"))
        if not valid and not has_party_or_tag:
            return _Answer(ERR_ALL_RECIPIENTS_INVALID, extra={"invaliduser": "|".join(invalid)})
        self._app_deliver(valid, body)

        extra: dict[str, Any] = {
            "invaliduser": "|".join(invalid),
            "invalidparty": "",
            "invalidtag": "",
            "unlicenseduser": "",
            "msgid": secrets.token_urlsafe(16),
        }
        if body.get("msgtype") == "template_card":
            extra["response_code"] = secrets.token_urlsafe(16)
        return _Answer(ERR_OK, extra=extra)

    def _app_body_error(self, body: dict[str, Any]) -> _Answer | None:
        """The error WeCom answers for a malformed message body, checked in its order: agent, type, content."""
        if body.get("agentid") in (None, ""):
            return _Answer(ERR_MISSING_AGENTID)
        try:
            agentid_ok = int(body["agentid"]) == self.agent_id
        except (TypeError, ValueError):
            agentid_ok = False
        if not agentid_ok:
            return _Answer(ERR_INVALID_AGENTID)
        msgtype = body.get("msgtype")
        if msgtype not in _APP_MSGTYPES:
            return _Answer(ERR_INVALID_MSGTYPE)
        content_obj = body.get(msgtype)
        if not isinstance(content_obj, dict):
            return _Answer(ERR_INVALID_PARAMETER, f"missing {msgtype} object. invalid Request Parameter")
        if msgtype in ("text", "markdown"):
            content = content_obj.get("content")
            if not isinstance(content, str) or not content:
                return _Answer(ERR_EMPTY_CONTENT)
            if _utf8_len(content) > self.APP_CONTENT_MAX_BYTES:
                return _Answer(ERR_CONTENT_TOO_LARGE)
        return None

    def _app_recipients(self, body: dict[str, Any]) -> tuple[list[str], list[str]]:
        """`touser` split into the users WeCom would deliver to and the ones it reports as `invaliduser`."""
        users = [u for u in str(body.get("touser") or "").split("|") if u]
        if "@all" in users:
            return ["@all"], []
        known = self.known_users
        valid = [u for u in users if known is None or u in known]
        invalid = [u for u in users if known is not None and u not in known]
        return valid, invalid

    def _app_deliver(self, users: list[str], body: dict[str, Any]) -> None:
        """Deliver to each member within the per-member minute/hour limits; the excess is silently dropped (§2c)."""
        now = self._clock()
        for user in users:
            sends = self._member_sends.setdefault(user, deque())
            while sends and sends[0] <= now - 3600.0:
                sends.popleft()
            last_minute = sum(1 for t in sends if t > now - 60.0)
            if last_minute >= self.APP_MEMBER_PER_MINUTE or len(sends) >= self.APP_MEMBER_PER_HOUR:
                self.dropped_app_deliveries.append((user, body))  # §2c: excess silently dropped
                continue
            sends.append(now)
            self._deliveries.setdefault(user, []).append(body)

    # ------------------------------------------------------------------ POST /cgi-bin/webhook/send
    async def _h_webhook(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        stall = self._webhook_stalls.get(rec.query.get("key", ""))
        if stall is not None:
            await stall.wait()
        return await self._finish(rec, self._webhook_send(rec))

    def stall_webhook(self, key: str) -> asyncio.Event:
        """A slow platform: sends to `key`'s webhook are recorded on arrival but answered only once the
        returned event is set."""
        stall = self._webhook_stalls[key] = asyncio.Event()
        return stall

    def _webhook_send(self, rec: RecordedRequest) -> _Answer:
        key = rec.query.get("key", "")
        if key not in self._webhook_keys:
            return _Answer(ERR_INVALID_WEBHOOK_URL)
        now = self._clock()
        failure = self._webhook_failures.get(key)
        if failure is not None:
            if failure.active(now):
                failure.consume()
                return _Answer(failure.errcode, failure.errmsg)
            del self._webhook_failures[key]
        body = rec.json
        if not isinstance(body, dict):
            return _Answer(ERR_INVALID_PARAMETER, "invalid json body. invalid Request Parameter")
        msgtype = body.get("msgtype")
        if msgtype not in _WEBHOOK_MSGTYPES:
            return _Answer(ERR_INVALID_MSGTYPE)
        content_obj = body.get(msgtype)
        if msgtype in ("text", "markdown", "markdown_v2"):
            content = content_obj.get("content") if isinstance(content_obj, dict) else None
            if not isinstance(content, str) or not content:
                return _Answer(ERR_EMPTY_CONTENT)
            limit = self.WEBHOOK_TEXT_MAX_BYTES if msgtype == "text" else self.WEBHOOK_MARKDOWN_MAX_BYTES
            if _utf8_len(content) > limit:
                return _Answer(
                    ERR_INVALID_PARAMETER,
                    f"{msgtype}.content exceed max length {limit}. invalid Request Parameter",
                )
        elif not isinstance(content_obj, dict):
            return _Answer(ERR_INVALID_PARAMETER, f"missing {msgtype} object. invalid Request Parameter")
        elif msgtype == "image":
            problem = _image_problem(content_obj, self.WEBHOOK_IMAGE_MAX_BYTES)
            if problem is not None:
                return problem
        window = self._webhook_sent.setdefault(key, deque())
        while window and window[0] <= now - self.WEBHOOK_RATE_WINDOW:
            window.popleft()
        if len(window) >= self.WEBHOOK_RATE_LIMIT:
            return _Answer(ERR_FREQ_LIMIT)
        window.append(now)
        return _Answer(ERR_OK)

    # ------------------------------------------------------------------ POST /cgi-bin/aibot/response
    async def _h_response_url(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        return await self._finish(rec, self._response_url(rec))

    def _response_url(self, rec: RecordedRequest) -> _Answer:
        state = self._response_codes.get(rec.query.get("response_code", ""))
        if state is None:
            return _Answer(ERR_RESPONSE_URL_INVALID, "invalid response_code")
        if state.used:
            return _Answer(ERR_RESPONSE_URL_INVALID, "response_code has been used")
        if self._clock() - state.created >= self.RESPONSE_URL_TTL:
            return _Answer(ERR_RESPONSE_URL_INVALID, "response_code expired")
        forced = self._take_forced(RESPONSE_URL_PATH)
        if forced:
            return forced
        body = rec.json
        if not isinstance(body, dict):
            return _Answer(ERR_INVALID_PARAMETER, "invalid json body. invalid Request Parameter")
        msgtype = body.get("msgtype")
        if msgtype not in _RESPONSE_URL_MSGTYPES:
            return _Answer(ERR_INVALID_MSGTYPE)
        if msgtype == "markdown":
            md = body.get("markdown")
            content = md.get("content") if isinstance(md, dict) else None
            if not isinstance(content, str) or not content:
                return _Answer(ERR_EMPTY_CONTENT)
        elif not isinstance(body.get("template_card"), dict):
            return _Answer(ERR_INVALID_PARAMETER, "missing template_card. invalid Request Parameter")
        state.used = True  # only a successful post spends the URL
        return _Answer(ERR_OK)

    # ------------------------------------------------------------------ anything else
    async def _h_unknown(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        self.received.append(rec)
        await self._notify()
        payload = {"errcode": 404, "errmsg": f"fake WeCom: no such API {request.path}"}
        return web.json_response(payload, status=404)

    # ------------------------------------------------------------------ WebSocket long connection
    async def _h_ws(self, request: web.Request) -> web.WebSocketResponse:
        """Long-connection endpoint (§1a). Frames are ``{"cmd", "headers": {"req_id"}, "body"}``; every
        command from the bot is acknowledged with ``{"headers": {"req_id"}, "errcode", "errmsg"}``.
        The first frame must be a valid ``aibot_subscribe``, otherwise the fake answers an error ack and
        closes. Only one subscribed connection per bot: a newer one kicks the older one with a
        ``disconnected_event`` (as the real server does).
        """
        ws = web.WebSocketResponse(timeout=2.0)
        await ws.prepare(request)
        conn = _WsConn(ws)
        self._ws_conns.add(conn)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                if not await self._ws_frame(conn, msg.data):
                    break
        finally:
            self._ws_conns.discard(conn)
            if self._ws_active is conn:
                self._ws_active = None
            await self._notify()
        return ws

    async def _ws_frame(self, conn: _WsConn, data: str) -> bool:
        """Handle one inbound frame; return False when the connection must end."""
        try:
            frame = json.loads(data)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            frame = {"cmd": None, "headers": {}, "raw": data}
        cmd = frame.get("cmd")
        headers = frame.get("headers")
        req_id = headers.get("req_id", "") if isinstance(headers, dict) else ""
        body = frame.get("body") if isinstance(frame.get("body"), dict) else {}
        rec = RecordedRequest(WS_PATH, {}, frame, self._clock(), method="WS", body=data)
        keep_open = True
        kicked: _WsConn | None = None

        if not conn.subscribed:
            credentials = (body.get("bot_id"), body.get("secret"))
            if cmd != "aibot_subscribe" or credentials != (self.aibot_id, self.aibot_secret):
                answer = _Answer(ERR_WS_AUTH_FAILED)
                keep_open = False
            else:
                conn.subscribed = True
                kicked, self._ws_active = self._ws_active, conn
                self.ws_subscriptions += 1
                answer = _Answer(ERR_OK)
        elif cmd == "ping":
            answer = _Answer(ERR_OK)
        elif cmd in _WS_REPLY_CMDS:
            pushed = self._ws_callbacks.get(req_id)
            if pushed is None or self._clock() - pushed > self.WS_REQ_ID_TTL:
                answer = _Answer(ERR_WS_INVALID_REQ_ID, "invalid or expired req_id")
            else:
                answer = _Answer(ERR_OK)
        elif cmd == "aibot_send_msg":
            if not body.get("chatid"):
                answer = _Answer(ERR_INVALID_PARAMETER, "chatid missing. invalid Request Parameter")
            elif body.get("msgtype") not in ("markdown", "template_card"):
                answer = _Answer(ERR_INVALID_MSGTYPE)
            else:
                answer = _Answer(ERR_OK)
        else:
            answer = _Answer(ERR_INVALID_PARAMETER, f"unknown cmd {cmd!r}")

        rec.errcode = answer.errcode
        self.received.append(rec)
        ack = {"headers": {"req_id": req_id}, **self._payload(answer)}
        await conn.ws.send_str(json.dumps(ack, ensure_ascii=False))
        if not keep_open:
            await conn.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"aibot_subscribe failed")
        if kicked is not None and not kicked.ws.closed:
            await self._ws_kick(kicked)
        await self._notify()
        return keep_open

    async def _ws_kick(self, conn: _WsConn) -> None:
        event = {
            "cmd": "aibot_event_callback",
            "headers": {"req_id": secrets.token_hex(16)},
            "body": {
                "msgid": secrets.token_hex(16),
                "create_time": int(self._wall_clock()),
                "aibotid": self.aibot_id,
                "msgtype": "event",
                "event": {"eventtype": "disconnected_event"},
            },
        }
        await conn.ws.send_str(json.dumps(event, ensure_ascii=False))
        await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"replaced by a new connection")

    async def ws_push(self, cmd: str, body: dict[str, Any]) -> str:
        """Push a raw server frame (``aibot_msg_callback`` / ``aibot_event_callback``); returns its req_id."""
        conn = self._ws_active
        if conn is None or conn.ws.closed:
            raise RuntimeError(
                "no subscribed WebSocket client (await wecom.wait_for(lambda: wecom.ws_connected))"
            )
        req_id = secrets.token_hex(16)
        self._ws_callbacks[req_id] = self._clock()
        self.sent_aibot_callbacks.append(body)
        frame = {"cmd": cmd, "headers": {"req_id": req_id}, "body": body}
        await conn.ws.send_str(json.dumps(frame, ensure_ascii=False))
        return req_id

    async def ws_push_text(
        self,
        text: str,
        user_id: str,
        chat_id: str | None = None,
        chat_type: str = "group",
        msgid: str | None = None,
        bot_name: str = "销售助手",
    ) -> str:
        """Push an ``aibot_msg_callback`` text frame (same body as the HTTP callback, unencrypted, no
        response_url); returns the req_id the bot must echo in ``aibot_respond_msg``."""
        body = self._aibot_text_payload(text, user_id, chat_id, chat_type, msgid, bot_name, response_url=None)
        return await self.ws_push("aibot_msg_callback", body)

    async def ws_push_event(
        self,
        eventtype: str = "enter_chat",
        user_id: str | None = None,
        chat_id: str | None = None,
        chat_type: str = "single",
        msgid: str | None = None,
        event_fields: dict[str, Any] | None = None,
    ) -> str:
        """Push an ``aibot_event_callback`` frame; returns its req_id."""
        body = self._aibot_event_payload(eventtype, user_id, chat_id, chat_type, msgid, event_fields)
        return await self.ws_push("aibot_event_callback", body)

    async def ws_drop(self) -> None:
        """Close every WebSocket from the server side (code 1001) to exercise the bot's reconnect."""
        for conn in list(self._ws_conns):
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server dropped the connection")

    # ------------------------------------------------------------------ callback builders: AI bot (§1a)
    def _stamp(self) -> tuple[str, str]:
        return str(int(self._wall_clock())), str(secrets.randbelow(9 * 10**9) + 10**9)

    def aibot_callback(self, payload: dict[str, Any]) -> tuple[dict[str, str], bytes]:
        """Encrypt + sign an arbitrary AI-bot plaintext *payload* as WeCom POSTs it.

        Returns ``(query, body)``: ``query = {"msg_signature", "timestamp", "nonce"}`` (pass as
        ``params=`` so aiohttp URL-encodes them) and ``body = b'{"encrypt": "..."}'`` (JSON, receiveid "").
        """
        ts, nonce = self._stamp()
        encrypt = self.aibot_crypto.encrypt(json.dumps(payload, ensure_ascii=False))
        query = {"msg_signature": self.aibot_crypto.sign(ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}
        self.sent_aibot_callbacks.append(payload)
        return query, json.dumps({"encrypt": encrypt}).encode("utf-8")

    def _aibot_common(
        self, user_id: str | None, chat_id: str | None, chat_type: str, msgid: str | None
    ) -> dict[str, Any]:
        if not user_id:
            raise ValueError("user_id is required")
        if chat_type not in ("single", "group"):
            raise ValueError("chat_type must be 'single' or 'group'")
        if chat_type == "group" and not chat_id:
            raise ValueError("group callbacks need a chat_id")
        payload: dict[str, Any] = {"msgid": msgid or secrets.token_hex(16), "aibotid": self.aibot_id}
        if chat_id:  # absent for single chats unless given (sources differ, PLATFORMS.md §9.2)
            payload["chatid"] = chat_id
        payload["chattype"] = chat_type
        payload["from"] = {"userid": user_id}
        return payload

    def _aibot_text_payload(
        self,
        text: str,
        user_id: str,
        chat_id: str | None,
        chat_type: str,
        msgid: str | None,
        bot_name: str,
        response_url: str | None,
    ) -> dict[str, Any]:
        payload = self._aibot_common(user_id, chat_id, chat_type, msgid)
        if response_url is not None:
            payload["response_url"] = response_url
        payload["msgtype"] = "text"
        # In groups only @-mentions reach the bot, and the content keeps the mention (§1a).
        payload["text"] = {"content": f"@{bot_name} {text}" if chat_type == "group" else text}
        return payload

    def _aibot_event_payload(
        self,
        eventtype: str,
        user_id: str | None,
        chat_id: str | None,
        chat_type: str,
        msgid: str | None,
        event_fields: dict[str, Any] | None,
    ) -> dict[str, Any]:
        payload = self._aibot_common(user_id, chat_id, chat_type, msgid)
        payload["create_time"] = int(self._wall_clock())
        payload["msgtype"] = "event"
        payload["event"] = {"eventtype": eventtype, **(event_fields or {})}
        return payload

    def aibot_text_callback(
        self,
        text: str,
        user_id: str,
        chat_id: str | None = None,
        chat_type: str = "group",
        msgid: str | None = None,
        bot_name: str = "销售助手",
    ) -> tuple[dict[str, str], bytes]:
        """A text message to the AI bot. In groups ``text.content`` is ``"@<bot_name> <text>"``.

        The plaintext carries a fresh one-shot ``response_url`` (see `new_response_url`); it and the whole
        payload are available afterwards as ``wecom.sent_aibot_callbacks[-1]``. ``create_time`` is absent,
        as on real plain messages (§1a table).
        """
        payload = self._aibot_text_payload(
            text, user_id, chat_id, chat_type, msgid, bot_name, response_url=self.new_response_url()
        )
        return self.aibot_callback(payload)

    def aibot_event_callback(
        self,
        eventtype: str = "enter_chat",
        user_id: str | None = None,
        chat_id: str | None = None,
        chat_type: str = "single",
        msgid: str | None = None,
        event_fields: dict[str, Any] | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """An event callback (``msgtype: "event"``, ``event.eventtype``, ``create_time``).

        *user_id* is required.

        ``enter_chat`` (first single-chat entry per day) may be answered with a passive ``text`` welcome.
        """
        return self.aibot_callback(
            self._aibot_event_payload(eventtype, user_id, chat_id, chat_type, msgid, event_fields)
        )

    def aibot_stream_callback(
        self, stream_id: str, user_id: str, chat_id: str | None = None, chat_type: str = "group"
    ) -> tuple[dict[str, str], bytes]:
        """A stream-refresh callback (``msgtype: "stream"``), sent while a passive stream is unfinished."""
        payload = self._aibot_common(user_id, chat_id, chat_type, None)
        payload["msgtype"] = "stream"
        payload["stream"] = {"id": stream_id}
        return self.aibot_callback(payload)

    def aibot_verify_params(self, echostr_plain: str) -> dict[str, str]:
        """Query for the AI bot's GET URL verification; the bot must answer *echostr_plain* as raw body."""
        return self._verify_params(self.aibot_crypto, echostr_plain)

    def decrypt_aibot_passive_reply(self, body: bytes | str) -> dict[str, Any]:
        """Verify + decrypt the bot's passive reply ``{"encrypt","msgsignature","timestamp","nonce"}``.

        Note the key is ``msgsignature`` (no underscore) in the AI-bot JSON reply (§1a). Raises
        `WeComCryptoError` (an AssertionError) on an empty body, missing keys, bad signature or bad crypto.
        """
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        if not text.strip():
            raise WeComCryptoError("empty passive reply body (the bot chose not to reply passively)")
        try:
            envelope = json.loads(text)
        except ValueError:
            raise WeComCryptoError(f"passive reply is not JSON: {text[:200]!r}") from None
        if not isinstance(envelope, dict):
            raise WeComCryptoError("passive reply must be a JSON object")
        missing = [k for k in ("encrypt", "msgsignature", "timestamp", "nonce") if k not in envelope]
        if missing:
            hint = ""
            if "msg_signature" in envelope:
                hint = " ('msg_signature' is the query-param name; the reply key is 'msgsignature')"
            raise WeComCryptoError(f"passive reply lacks {missing}{hint}")
        plain = self.aibot_crypto.open(
            str(envelope["msgsignature"]),
            str(envelope["timestamp"]),
            str(envelope["nonce"]),
            str(envelope["encrypt"]),
        )
        try:
            result = json.loads(plain)
        except ValueError:
            raise WeComCryptoError(f"decrypted reply is not JSON: {plain[:200]!r}") from None
        if not isinstance(result, dict):
            raise WeComCryptoError("decrypted reply must be a JSON object")
        return result

    # ------------------------------------------------------------------ callback builders: app (§1b)
    def app_callback(self, plain_xml: str) -> tuple[dict[str, str], bytes]:
        """Encrypt + sign an arbitrary app plaintext XML into WeCom's POST envelope (receiveid = CorpID)."""
        ts, nonce = self._stamp()
        encrypt = self.app_crypto.encrypt(plain_xml)
        query = {"msg_signature": self.app_crypto.sign(ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}
        envelope = (
            f"<xml><ToUserName>{_cdata(self.corp_id)}</ToUserName>"
            f"<AgentID>{_cdata(str(self.agent_id))}</AgentID>"
            f"<Encrypt>{_cdata(encrypt)}</Encrypt></xml>"
        )
        self.sent_app_callbacks.append(plain_xml)
        return query, envelope.encode("utf-8")

    def app_text_callback(
        self, text: str, user_id: str, msg_id: str | int | None = None
    ) -> tuple[dict[str, str], bytes]:
        """A member's text message to the self-built app (``MsgId`` is a 64-bit integer; dedupe on it)."""
        mid = str(msg_id if msg_id is not None else secrets.randbelow(2**63 - 10**18) + 10**18)
        plain = (
            f"<xml><ToUserName>{_cdata(self.corp_id)}</ToUserName>"
            f"<FromUserName>{_cdata(user_id)}</FromUserName>"
            f"<CreateTime>{int(self._wall_clock())}</CreateTime>"
            f"<MsgType>{_cdata('text')}</MsgType>"
            f"<Content>{_cdata(text)}</Content>"
            f"<MsgId>{mid}</MsgId>"
            f"<AgentID>{self.agent_id}</AgentID></xml>"
        )
        return self.app_callback(plain)

    def app_event_callback(
        self, event: str, user_id: str, event_key: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """An app event (``MsgType`` event, e.g. ``enter_agent``).

        Events carry no MsgId — the bot must dedupe them on FromUserName + CreateTime (§1b).
        """
        key = f"<EventKey>{_cdata(event_key)}</EventKey>" if event_key is not None else ""
        plain = (
            f"<xml><ToUserName>{_cdata(self.corp_id)}</ToUserName>"
            f"<FromUserName>{_cdata(user_id)}</FromUserName>"
            f"<CreateTime>{int(self._wall_clock())}</CreateTime>"
            f"<MsgType>{_cdata('event')}</MsgType>"
            f"<Event>{_cdata(event)}</Event>{key}"
            f"<AgentID>{self.agent_id}</AgentID></xml>"
        )
        return self.app_callback(plain)

    def app_verify_params(self, echostr_plain: str) -> dict[str, str]:
        """Query for the app's GET URL verification (receiveid = CorpID)."""
        return self._verify_params(self.app_crypto, echostr_plain)

    def decrypt_app_passive_reply(self, xml: bytes | str) -> str:
        """Verify + decrypt ``<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>``.

        Returns the plaintext reply XML. Raises `WeComCryptoError` on an empty body, missing elements, a bad
        ``MsgSignature`` or bad crypto.
        """
        text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
        if not text.strip():
            raise WeComCryptoError("empty passive reply body (the bot chose not to reply passively)")
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise WeComCryptoError(f"passive reply is not XML: {exc}") from None
        fields = {child.tag: (child.text or "") for child in root}
        missing = [k for k in ("Encrypt", "MsgSignature", "TimeStamp", "Nonce") if not fields.get(k)]
        if missing:
            raise WeComCryptoError(f"passive reply lacks {missing}")
        plain = self.app_crypto.open(
            fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"], fields["Encrypt"]
        )
        return plain.decode("utf-8")

    def app_passive_reply_fields(self, xml: bytes | str) -> dict[str, str]:
        """`decrypt_app_passive_reply`, flattened to ``{tag: text}`` (ToUserName, Content, ...)."""
        root = ET.fromstring(self.decrypt_app_passive_reply(xml))
        return {child.tag: (child.text or "") for child in root}

    def _verify_params(self, crypto: WeComCrypto, echostr_plain: str) -> dict[str, str]:
        ts, nonce = self._stamp()
        echostr = crypto.encrypt(echostr_plain)
        signature = crypto.sign(ts, nonce, echostr)
        return {"msg_signature": signature, "timestamp": ts, "nonce": nonce, "echostr": echostr}
