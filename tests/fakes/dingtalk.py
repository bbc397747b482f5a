"""A fake DingTalk (钉钉) for end-to-end tests.

The fake runs two aiohttp listeners on 127.0.0.1, both on port 0 (never a fixed port):

* ``oapi_base`` stands in for ``https://oapi.dingtalk.com`` (legacy API: ``/gettoken``, custom-robot
  ``/robot/send``, ``/robot/sendBySession``, ``/topapi/...`` work notifications);
* ``api_base`` stands in for ``https://api.dingtalk.com`` (new API: ``/v1.0/oauth2/accessToken``,
  ``/v1.0/robot/...``, the Stream gateway ``/v1.0/gateway/connections/open``) and also serves the Stream
  WebSocket at ``/stream``.

They are separate hosts on the real platform and separate ports here, so an adapter that sends a new-API
call to the legacy host (or the other way round) gets a 404 instead of a lucky success. Build URLs by string
concatenation (``f"{api_base}/v1.0/..."``).

It checks what the platform checks (signatures, timestamps, tokens, robot codes, size limits, rate limits),
answers with the platform's error shapes, and records every request in :attr:`FakeDingTalk.received`.
Protocol facts follow ``/work/shared/PLATFORMS.md`` §0, §3, §4 and §6; where the fake had to choose between
sources, the choice is written next to the code (search for "Choice:").

Two answer shapes, as on the real platform:

* legacy ``oapi`` host: always HTTP 200, success is ``errcode == 0``;
* new ``api`` host: HTTP 2xx with the business fields on success, HTTP 4xx with
  ``{"code": <string>, "message": ..., "requestid": ...}`` on failure — branch on ``code``, not on status.

Time: ``clock`` (seconds, monotonic) drives every expiry and rate limit (tokens, sessionWebhooks, custom
robot window/block); ``wall_clock`` (epoch seconds) produces the millisecond timestamps DingTalk puts on the
wire and validates the 1-hour skew of signed requests. :class:`ManualClock` gives a test both.

Typical use::

    clock = ManualClock()
    async with FakeDingTalk(clock=clock.monotonic, wall_clock=clock.time) as ding:
        headers, body = ding.robot_text_callback("认领 华为", "zhangsan", "张三")
        await http.post(bot_url, headers=headers, data=body)          # DingTalk → bot
        [reply] = await ding.wait_for(lambda: ding.session_messages())  # bot → sessionWebhook
        assert "华为" in reply.json["text"]["content"]
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import string
import time
import uuid
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import quote_plus

from aiohttp import WSCloseCode, WSMsgType, web

with warnings.catch_warnings():
    # dingtalk-sdk 1.3.8 ships invalid escape sequences in dingtalk/client/api/taobao.py, which
    # `import dingtalk.crypto` compiles too (PLATFORMS.md §5.1).
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", SyntaxWarning)
    from dingtalk.core.exceptions import InvalidCorpIdOrSuiteKeyException, InvalidSignatureException
    from dingtalk.crypto import DingTalkCrypto, PrpCrypto

__all__ = [
    "API_AUTH_MISSING",
    "API_INVALID_TOKEN",
    "CUSTOM_ROBOT_RATE_LIMIT",
    "CUSTOM_ROBOT_BLOCK_SECONDS",
    "EventResponseError",
    "FakeDingTalk",
    "ManualClock",
    "ROBOT_MESSAGE_TOPIC",
    "ReceivedRequest",
    "SESSION_WEBHOOK_TTL_SECONDS",
    "StreamAck",
    "StreamNotConnected",
    "StreamSubscriptionError",
    "TOKEN_TTL_SECONDS",
    "dingtalk_sign",
    "dingtalk_sign_urlencoded",
]

T = TypeVar("T")

# --------------------------------------------------------------------------------------------------
# Protocol constants
# --------------------------------------------------------------------------------------------------

#: Stream topic of robot messages (``ChatbotMessage.TOPIC`` in dingtalk-stream-sdk-python).
ROBOT_MESSAGE_TOPIC = "/v1.0/im/bot/messages/get"
#: Access tokens live 7200 s; a repeated token request inside that window returns the same token and
#: extends it (PLATFORMS.md §4d).
TOKEN_TTL_SECONDS = 7200
#: sessionWebhook validity: the sample payload shows ``createAt + 90 min`` (PLATFORMS.md §3a).
SESSION_WEBHOOK_TTL_SECONDS = 90 * 60
#: Signed requests (robot callbacks, custom-robot 加签) must be within 1 hour of server time.
SIGN_MAX_SKEW_MS = 3_600_000
#: Custom robot: 20 messages per minute per robot; exceeding it throttles the robot for 10 minutes
#: (PLATFORMS.md §4a).
CUSTOM_ROBOT_RATE_LIMIT = 20
CUSTOM_ROBOT_WINDOW_SECONDS = 60.0
CUSTOM_ROBOT_BLOCK_SECONDS = 600.0
#: Robot OpenAPI ``msgParam`` limit in UTF-8 bytes (PLATFORMS.md §4b).
MSG_PARAM_MAX_BYTES = 15_000
#: ``oToMessages/batchSend`` accepts at most 20 userIds per call (PLATFORMS.md §4b, [M]).
OTO_MAX_USERS = 20

# Legacy-host errcodes (HTTP 200 + errcode) ------------------------------------------------------
#: Choice: an expired or unknown sessionWebhook answers ``300001 "session 不存在"`` — the body several
#: adapters log verbatim when a stored sessionWebhook is reused after it lapsed (agentscope-ai/QwenPaw#2221,
#: #1435; agentscope-ai/agentscope#1317). The docs do not list a code for this case.
SESSION_NOT_FOUND = (300001, "session 不存在")
#: Choice: unknown custom-robot token → ``400101`` as the documented error table (PLATFORMS.md §4a). A live
#: probe has seen ``300005 "token is not exist"`` instead; simulate that with :meth:`fail_custom_robot`.
CUSTOM_ROBOT_TOKEN_NOT_FOUND = (400101, "access_token不存在")
CUSTOM_ROBOT_THROTTLED = (410100, "发送速度太快而限流")
CUSTOM_ROBOT_UNSUPPORTED_MSGTYPE = (400105, "不支持的消息类型")
SECURITY_SIGN_NOT_MATCH = (310000, "sign not match")
SECURITY_INVALID_TIMESTAMP = (310000, "invalid timestamp")
SECURITY_KEYWORDS = (310000, "keywords not in content")
INVALID_CONTENT_TYPE = (43004, "无效的HTTP HEADER Content-Type")
#: ``/gettoken`` with a wrong key/secret: ``40096`` is what the live endpoint answers (several SDK comments
#: and probes); the global table only lists ``40089``.
GETTOKEN_BAD_SECRET = (40096, "不合法的appKey或appSecret")
GETTOKEN_MISSING = (40035, "缺少参数 corpid or appkey")
#: Work notification with an ``agent_id`` that does not belong to the token's app
#: (007gzs/dingtalk-sdk#44 shows this errcode/message from the live API).
WRONG_AGENT_ID = (41020, "accessToken中包含的appKey与agentId不一致， 无法使用当前agentId")
INVALID_PARAMETER = (40035, "不合法的参数")

# New-host error codes (HTTP 4xx + code) ----------------------------------------------------------
#: Token in the header is unknown/expired. Choice: HTTP **400** — what live probes and adapter bug reports
#: show (``[400] {"code":"InvalidAuthentication","message":"不合法的access_token"}``); the stream SDK's
#: "reset on 401" comment suggests 401 for some endpoints, so the status is configurable
#: (``FakeDingTalk(api_auth_error_status=401)``). Adapters must branch on ``code``.
API_INVALID_TOKEN = ("InvalidAuthentication", "不合法的access_token")
#: The new host reads the token only from the ``x-acs-dingtalk-access-token`` header (not query, not Bearer).
API_AUTH_MISSING = ("AuthenticationFailed.MissingParameter", "缺少参数：x-acs-dingtalk-access-token")
OAUTH2_BAD_SECRET = ("invalidClientIdOrSecret", "无效的clientId或者clientSecret")
#: ``/v1.0/gateway/connections/open`` with a wrong secret: HTTP 401 (zfanswer/dify-on-dingtalk#28).
STREAM_AUTH_FAILED = ("authFailed", "鉴权失败")

_LEGACY_AUTH_ERRORS: dict[str, tuple[int, str, str, str]] = {
    # reason: (plain errcode, plain errmsg, wrapped sub_code, wrapped sub_msg)
    "missing": (41001, "缺少access_token参数", "40000", "access_token is blank"),
    "unknown": (40014, "不合法的access_token", "40014", "不合法的access_token"),
    "expired": (42001, "access_token超时", "42001", "access_token超时"),
}

_ROBOT_MSGTYPES = frozenset({"text", "markdown", "link", "actionCard", "feedCard"})
_WORK_MSGTYPES = frozenset({"text", "image", "voice", "file", "link", "oa", "markdown", "action_card"})
_MSG_KEYS: dict[str, tuple[str, ...]] = {
    # msgKey -> keys that must be in msgParam (only the ones the fake checks)
    "sampleText": ("content",),
    "sampleMarkdown": ("title", "text"),
    "sampleLink": ("title", "text", "messageUrl"),
    "sampleImageMsg": ("photoURL",),
    "sampleActionCard": ("title", "text", "singleTitle", "singleURL"),
    "sampleActionCard2": ("title", "text"),
    "sampleActionCard3": ("title", "text"),
    "sampleActionCard4": ("title", "text"),
    "sampleActionCard5": ("title", "text"),
    "sampleActionCard6": ("title", "text"),
    "sampleAudio": ("mediaId",),
    "sampleFile": ("mediaId",),
    "sampleVideo": ("videoMediaId",),
}
_RECORDED_HEADERS = ("content-type", "x-acs-dingtalk-access-token", "user-agent", "accept")
_DEFAULT_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 chars → 32-byte AES key

# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def dingtalk_sign(secret: str, timestamp: int | str) -> str:
    """``base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))`` (PLATFORMS.md §3a, §4a).

    The same primitive signs robot HTTP callbacks (header ``sign``, key = AppSecret, *not* URL-encoded) and
    custom-robot webhooks (query ``sign``, key = the ``SEC...`` secret, URL-encoded — see
    :func:`dingtalk_sign_urlencoded`).
    """
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def dingtalk_sign_urlencoded(secret: str, timestamp: int | str) -> str:
    """:func:`dingtalk_sign` URL-encoded the way DingTalk's custom-robot docs do (``quote_plus``)."""
    return quote_plus(dingtalk_sign(secret, timestamp))


def _event_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """sha1 over the sorted (token, timestamp, nonce, encrypt) strings (PLATFORMS.md §0)."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def _random_alnum(n: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _request_id() -> str:
    return uuid.uuid4().hex[:12]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _api_error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"requestid": str(uuid.uuid4()).upper(), "code": code, "message": message}


def _legacy_error(err: tuple[int, str], **extra: Any) -> tuple[int, dict[str, Any]]:
    return 200, {"errcode": err[0], "errmsg": err[1], **extra}


class ManualClock:
    """Hand-driven time for tests: ``clock=c.monotonic, wall_clock=c.time``; ``c.advance(s)`` moves both."""

    def __init__(self, wall_start: float = 1_700_000_000.0, monotonic_start: float = 10_000.0) -> None:
        self._wall = wall_start
        self._mono = monotonic_start

    def monotonic(self) -> float:
        return self._mono

    def time(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds


class EventResponseError(ValueError):
    """The bot's encrypted event-callback answer is malformed, mis-signed or for another receiver."""


class StreamNotConnected(RuntimeError):
    """A test asked the fake to push a Stream frame but no client is connected."""


class StreamSubscriptionError(RuntimeError):
    """The connected Stream client did not subscribe to the topic being pushed.

    The real gateway silently never delivers such frames (a common adapter bug: subscribing only
    ``{"type": "EVENT", "topic": "*"}``, which does *not* cover robot messages — those need
    ``{"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}``). The fake raises instead of hanging.
    """


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass
class ReceivedRequest:
    """One request (or Stream frame) the fake received, with what it answered.

    ``kind`` is one of: ``gettoken``, ``oauth2_token``, ``session_webhook``, ``custom_robot``,
    ``group_message``, ``oto_message``, ``work_notification``, ``stream_open``, ``stream_connect``,
    ``stream_ack``, ``stream_frame`` (a non-ack frame from the client), ``unknown`` (no such route).
    ``time`` is the fake's ``clock()`` when it arrived. ``headers`` keeps only content-type,
    x-acs-dingtalk-access-token, user-agent and accept (lower-case keys).
    """

    kind: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    body: bytes
    time: float
    status: int = 0
    response: Any = None

    @property
    def accepted(self) -> bool:
        """True when the platform would have accepted it (2xx, and errcode 0 where there is one)."""
        if not 200 <= self.status < 300:
            return False
        if isinstance(self.response, dict) and "errcode" in self.response:
            return self.response["errcode"] in (0, "0")
        return True

    @property
    def msg_param(self) -> Any:
        """``msgParam`` of a Robot OpenAPI send, decoded from its JSON string (None if absent/invalid)."""
        if isinstance(self.json, dict) and isinstance(self.json.get("msgParam"), str):
            try:
                return json.loads(self.json["msgParam"])
            except ValueError:
                return None
        return None


@dataclass
class StreamAck:
    """An ack the bot sent on the Stream socket, paired with the frame it answers (if the fake sent it)."""

    message_id: str
    code: Any
    message: Any
    headers: dict[str, Any]
    data: Any
    raw: dict[str, Any]
    frame: dict[str, Any] | None
    time: float

    @property
    def data_json(self) -> Any:
        """``data`` decoded (acks carry it as a JSON *string*); None if it is not valid JSON."""
        if isinstance(self.data, str):
            try:
                return json.loads(self.data)
            except ValueError:
                return None
        return self.data

    @property
    def echoes_data(self) -> bool:
        """The official SDK echoes the frame's ``data`` back in the ack; True if this ack does."""
        if self.frame is None:
            return False
        return self.data_json == json.loads(self.frame["data"])


@dataclass
class _Token:
    value: str
    expires_at: float
    revoked: bool = False


@dataclass
class _CustomRobot:
    token: str
    secret: str | None
    keywords: tuple[str, ...]
    sent_at: deque[float] = field(default_factory=deque)
    blocked_until: float | None = None
    forced: tuple[int, str] | None = None
    forced_until: float | None = None  # None with `forced` set = until cleared


@dataclass
class _Ticket:
    subscriptions: list[dict[str, Any]]
    used: bool = False


@dataclass
class _StreamConn:
    ws: web.WebSocketResponse
    connection_id: str
    subscriptions: list[dict[str, Any]]


_Handler = Callable[[web.Request, ReceivedRequest], tuple[int, Any]]


# --------------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------------


class FakeDingTalk:
    """Fake DingTalk platform; use as ``async with FakeDingTalk(...) as ding:``.

    Args:
        app_key / app_secret: the internal app's credentials (AppKey = Client ID).
        robot_code: the app robot's code; defaults to ``app_key`` (true for internal-app robots).
        agent_id: the app's AgentId, required by work notifications.
        event_token / event_aes_key: event-subscription crypto settings (43-char EncodingAESKey).
        event_owner_key: receive-id inside event ciphertexts; defaults to ``app_key`` (PLATFORMS.md §0).
        corp_id: the organisation's corpId (``senderCorpId`` / ``chatbotCorpId``).
        clock: monotonic seconds; drives expiries and rate limits.
        wall_clock: epoch seconds; drives wire timestamps and the 1-hour signature skew.
        legacy_auth_errors: how ``oapi`` ``/topapi/...`` reports a bad token. ``"wrapped"`` (default) is what
            the live gateway does: ``{"errcode": 88, "sub_code": "40014"|"42001"|"40000", "sub_msg": ...}``
            (note snake_case and the *string* sub_code). ``"plain"`` answers the global-table codes directly
            (40014 unknown, 42001 expired, 41001 missing). Adapters should handle both.
        api_auth_error_status: HTTP status of ``InvalidAuthentication`` on the new host (default 400).
    """

    def __init__(
        self,
        *,
        app_key: str = "dingappkey",
        app_secret: str = "appsecret",
        robot_code: str | None = None,
        agent_id: int = 123,
        event_token: str = "tok",
        event_aes_key: str = _DEFAULT_AES_KEY,
        event_owner_key: str | None = None,
        corp_id: str = "dingfakecorp0000000000000000000001",
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        legacy_auth_errors: Literal["wrapped", "plain"] = "wrapped",
        api_auth_error_status: int = 400,
        host: str = "127.0.0.1",
    ) -> None:
        if len(event_aes_key) != 43:
            raise ValueError("event_aes_key must be the 43-character EncodingAESKey")
        self.app_key = app_key
        self.app_secret = app_secret
        self.robot_code = robot_code if robot_code is not None else app_key
        self.agent_id = agent_id
        self.event_token = event_token
        self.event_aes_key = event_aes_key
        self.event_owner_key = event_owner_key if event_owner_key is not None else app_key
        self.corp_id = corp_id
        self.legacy_auth_errors = legacy_auth_errors
        self.api_auth_error_status = api_auth_error_status
        self.host = host
        self._clock = clock
        self._wall_clock = wall_clock
        self._last_robot_ts = 0
        #: Seconds the platform takes to answer an HTTP API call (recorded on arrival): the internet's
        #: round trip to the real one, 0 on loopback.
        self.answer_delay = 0.0
        self._crypto = DingTalkCrypto(event_token, event_aes_key, self.event_owner_key)

        #: Every request and Stream frame received, in arrival order.
        self.received: list[ReceivedRequest] = []
        #: Acks received on the Stream socket(s), in arrival order.
        self.stream_acks: list[StreamAck] = []
        #: Frames the fake pushed on the Stream socket(s), in order.
        self.stream_sent: list[dict[str, Any]] = []
        #: Number of Stream WebSocket connections accepted so far (rejected tickets do not count).
        self.stream_connections = 0
        #: Stream ``appId`` header value (the unified app id, a UUID on the real platform).
        self.stream_app_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dingtalk-app:{app_key}"))
        #: If set, ``oToMessages/batchSend`` reports userIds outside it in ``invalidStaffIdList``.
        self.valid_staff_ids: set[str] | None = None

        self._tokens: dict[str, _Token] = {}
        self._current_token: _Token | None = None
        self._sessions: dict[str, float] = {}  # session id -> created (clock)
        self._custom_robots: dict[str, _CustomRobot] = {}
        self._injected: dict[str, deque[tuple[int, Any]]] = {}
        self._tickets: dict[str, _Ticket] = {}
        self._stream_active: list[_StreamConn] = []
        self._frames_by_id: dict[str, dict[str, Any]] = {}
        self._task_ids = iter(range(256271667526, 10**15))
        #: (method, path) of every request answered with a forced redirect (`redirect_next`), oldest first.
        self.redirected: list[tuple[str, str]] = []
        self._redirects: dict[str, deque[tuple[str, int]]] = {}
        self._cond: asyncio.Condition | None = None
        self._oapi_runner: web.AppRunner | None = None
        self._api_runner: web.AppRunner | None = None
        self._api_port = 0
        #: Legacy host base URL, stands in for https://oapi.dingtalk.com (set on entering the context).
        self.oapi_base = ""
        #: New-API host base URL, stands in for https://api.dingtalk.com (set on entering the context).
        self.api_base = ""

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeDingTalk:
        self._cond = asyncio.Condition()
        self._oapi_runner, oapi_port = await self._start(self._build_oapi_app())
        self._api_runner, api_port = await self._start(self._build_api_app())
        self.oapi_base = f"http://{self.host}:{oapi_port}"
        self.api_base = f"http://{self.host}:{api_port}"
        self._api_port = api_port
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for conn in list(self._stream_active):
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"fake shutting down")
        for runner in (self._api_runner, self._oapi_runner):
            if runner is not None:
                await runner.cleanup()
        self._api_runner = self._oapi_runner = None

    async def _start(self, app: web.Application) -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        port = runner.addresses[0][1]
        return runner, int(port)

    def _build_oapi_app(self) -> web.Application:
        app = web.Application(middlewares=[self._redirect_middleware])
        app.router.add_get("/gettoken", self._route("gettoken", self._h_gettoken))
        app.router.add_post("/robot/send", self._route("custom_robot", self._h_custom_robot))
        app.router.add_post("/robot/sendBySession", self._route("session_webhook", self._h_session))
        app.router.add_post(
            "/topapi/message/corpconversation/asyncsend_v2",
            self._route("work_notification", self._h_work_notification),
        )
        app.router.add_route("*", "/{tail:.*}", self._route("unknown", self._h_unknown))
        return app

    def _build_api_app(self) -> web.Application:
        app = web.Application(middlewares=[self._redirect_middleware])
        app.router.add_post("/v1.0/oauth2/accessToken", self._route("oauth2_token", self._h_oauth2_token))
        app.router.add_post("/v1.0/robot/groupMessages/send", self._route("group_message", self._h_group))
        app.router.add_post("/v1.0/robot/oToMessages/batchSend", self._route("oto_message", self._h_oto))
        app.router.add_post("/v1.0/gateway/connections/open", self._route("stream_open", self._h_stream_open))
        app.router.add_get("/stream", self._h_stream_ws)
        app.router.add_route("*", "/{tail:.*}", self._route("unknown", self._h_unknown))
        return app

    # ------------------------------------------------------------------ recording / waiting

    def _route(self, kind: str, handler: _Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def endpoint(request: web.Request) -> web.Response:
            raw = await request.read()
            try:
                parsed: Any = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            rec = ReceivedRequest(
                kind=kind,
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers={k: request.headers[k] for k in _RECORDED_HEADERS if k in request.headers},
                json=parsed,
                body=raw,
                time=self._clock(),
            )
            queue = self._injected.get(request.path)
            if queue:
                status, payload = queue.popleft()
            else:
                status, payload = handler(request, rec)
            rec.status, rec.response = status, payload
            self.received.append(rec)
            await self._notify()
            if self.answer_delay:
                await asyncio.sleep(self.answer_delay)
            return web.json_response(payload, status=status, dumps=_dumps)

        return endpoint

    async def _notify(self) -> None:
        assert self._cond is not None, "FakeDingTalk is not running (use `async with`)"
        async with self._cond:
            self._cond.notify_all()

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Wait until ``predicate()`` is truthy and return its value.

        Re-evaluated whenever the fake records a request or Stream frame, or a Stream connection opens or
        closes — no sleep-polling. Raises :class:`TimeoutError` (listing what arrived) after ``timeout``.
        """
        assert self._cond is not None, "FakeDingTalk is not running (use `async with`)"
        async with self._cond:
            try:
                return await asyncio.wait_for(self._cond.wait_for(predicate), timeout)
            except TimeoutError:
                seen = [f"{r.method} {r.path} -> {r.status}" for r in self.received[-10:]]
                raise TimeoutError(
                    f"fake DingTalk: condition not met within {timeout}s; last requests: {seen}"
                ) from None

    def requests(self, kind: str) -> list[ReceivedRequest]:
        """All recorded requests of one ``kind`` (accepted or not)."""
        return [r for r in self.received if r.kind == kind]

    def session_messages(self, session: str | None = None) -> list[ReceivedRequest]:
        """Accepted sessionWebhook posts; ``session`` filters by webhook URL or bare session id."""
        sid = session.rsplit("session=", 1)[-1] if session else None
        return [
            r
            for r in self.received
            if r.kind == "session_webhook" and r.accepted and (sid is None or r.query.get("session") == sid)
        ]

    def group_messages(self, open_conversation_id: str | None = None) -> list[ReceivedRequest]:
        """Accepted ``/v1.0/robot/groupMessages/send`` calls (``rec.msg_param`` is the decoded msgParam)."""
        return [
            r
            for r in self.received
            if r.kind == "group_message"
            and r.accepted
            and (open_conversation_id is None or r.json.get("openConversationId") == open_conversation_id)
        ]

    def oto_messages(self, user_id: str | None = None) -> list[ReceivedRequest]:
        """Accepted ``/v1.0/robot/oToMessages/batchSend`` calls, optionally those addressed to ``user_id``."""
        return [
            r
            for r in self.received
            if r.kind == "oto_message" and r.accepted and (user_id is None or user_id in r.json.get("userIds", []))
        ]

    def custom_robot_messages(self, token: str | None = None) -> list[ReceivedRequest]:
        """Accepted custom-robot webhook posts, optionally for one robot ``access_token``."""
        return [
            r
            for r in self.received
            if r.kind == "custom_robot" and r.accepted and (token is None or r.query.get("access_token") == token)
        ]

    def work_notifications(self) -> list[ReceivedRequest]:
        """Accepted ``asyncsend_v2`` work notifications."""
        return [r for r in self.received if r.kind == "work_notification" and r.accepted]

    @property
    def token_requests(self) -> int:
        """Token requests of both kinds (legacy ``/gettoken`` + new ``/v1.0/oauth2/accessToken``)."""
        return sum(1 for r in self.received if r.kind in ("gettoken", "oauth2_token"))

    @property
    def legacy_token_requests(self) -> int:
        return len(self.requests("gettoken"))

    @property
    def oauth2_token_requests(self) -> int:
        return len(self.requests("oauth2_token"))

    def redirect_next(self, path: str, to_base: str, *, status: int = 307, count: int = 1) -> None:
        """Answer the next *count* requests to *path* (either host, any method, the Stream WebSocket upgrade
        too) with *status* and ``Location: <to_base><the request's path and query>`` — as a hijacked or
        misconfigured host would. The request is not handled (not recorded in `received`)."""
        self._redirects.setdefault(path, deque()).extend([(to_base.rstrip("/"), status)] * count)

    @web.middleware
    async def _redirect_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        queue = self._redirects.get(request.path)
        if not queue:
            return await handler(request)
        to_base, status = queue.popleft()
        await request.read()
        self.redirected.append((request.method, request.path))
        await self._notify()
        return web.Response(status=status, headers={"Location": to_base + request.path_qs})

    def fail_next(self, path: str, *, status: int | None = None, body: Any = None, times: int = 1) -> None:
        """Answer the next ``times`` requests to ``path`` with ``status``/``body`` (still recorded).

        Defaults: for ``/v1.0/...`` paths HTTP 500 ``{"code": "systemError", ...}``; for legacy paths HTTP 200
        ``{"errcode": -1, "errmsg": "系统繁忙"}`` (the documented "busy, retry" answer).
        """
        new_api = path.startswith("/v1.0/")
        if status is None:
            status = 500 if new_api else 200
        if body is None:
            body = (
                {"requestid": _request_id(), "code": "systemError", "message": "系统错误"}
                if new_api
                else {"errcode": -1, "errmsg": "系统繁忙"}
            )
        self._injected.setdefault(path, deque()).extend([(status, body)] * times)

    # ------------------------------------------------------------------ access tokens

    def _issue_token(self) -> str:
        now = self._clock()
        tok = self._current_token
        if tok is not None and not tok.revoked and now < tok.expires_at:
            tok.expires_at = now + TOKEN_TTL_SECONDS  # same token, validity extended (PLATFORMS.md §4d)
            return tok.value
        tok = _Token(value=secrets.token_hex(16), expires_at=now + TOKEN_TTL_SECONDS)
        self._tokens[tok.value] = tok
        self._current_token = tok
        return tok.value

    def _token_state(self, value: str | None) -> Literal["ok", "missing", "unknown", "expired"]:
        if not value:
            return "missing"
        tok = self._tokens.get(value)
        if tok is None:
            return "unknown"
        if tok.revoked or self._clock() >= tok.expires_at:
            return "expired"
        return "ok"

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far; the next token request issues a fresh one.

        Old tokens then get, on the legacy host, errcode 88/sub_code ``"42001"`` (or plain ``42001`` with
        ``legacy_auth_errors="plain"``) and, on the new host, ``InvalidAuthentication``.
        """
        for tok in self._tokens.values():
            tok.revoked = True

    @property
    def current_token(self) -> str | None:
        """The token a token request would return now, if one is valid."""
        tok = self._current_token
        if tok is None or self._token_state(tok.value) != "ok":
            return None
        return tok.value

    def _legacy_auth(self, rec: ReceivedRequest) -> tuple[int, Any] | None:
        # The legacy host reads the token only from `?access_token=`; a header token counts as missing.
        state = self._token_state(rec.query.get("access_token"))
        if state == "ok":
            return None
        code, msg, sub_code, sub_msg = _LEGACY_AUTH_ERRORS[state]
        if self.legacy_auth_errors == "wrapped":
            return 200, {
                "errcode": 88,
                "errmsg": sub_msg,
                "sub_code": sub_code,
                "sub_msg": sub_msg,
                "request_id": _request_id(),
            }
        return 200, {"errcode": code, "errmsg": msg, "request_id": _request_id()}

    def _api_auth(self, request: web.Request) -> tuple[int, Any] | None:
        state = self._token_state(request.headers.get("x-acs-dingtalk-access-token"))
        if state == "ok":
            return None
        if state == "missing":
            return _api_error(400, *API_AUTH_MISSING)
        return _api_error(self.api_auth_error_status, *API_INVALID_TOKEN)

    def _h_gettoken(self, request: web.Request, rec: ReceivedRequest) -> tuple[int, Any]:
        appkey, appsecret = rec.query.get("appkey"), rec.query.get("appsecret")
        if not appkey or appsecret is None:
            return _legacy_error(GETTOKEN_MISSING)
        if appkey != self.app_key or appsecret != self.app_secret:
            return _legacy_error(GETTOKEN_BAD_SECRET)
        return 200, {
            "errcode": 0,
            "errmsg": "ok",
            "access_token": self._issue_token(),
            "expires_in": TOKEN_TTL_SECONDS,
        }

    def _h_oauth2_token(self, request: web.Request, rec: ReceivedRequest) -> tuple[int, Any]:
        # Choice: legacy and new endpoints hand out the same app token (one token per app, usable on both
        # hosts); the docs do not say, and it keeps "count token requests" meaningful.
        body = rec.json
        if not isinstance(body, dict):
            return _api_error(400, "Missingbody", "body is mandatory for this action.")
        for name in ("appKey", "appSecret"):
            if not body.get(name):
                return _api_error(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if body["appKey"] != self.app_key or body["appSecret"] != self.app_secret:
            return _api_error(400, *OAUTH2_BAD_SECRET)
        return 200, {"accessToken": self._issue_token(), "expireIn": TOKEN_TTL_SECONDS}

    # ------------------------------------------------------------------ robot HTTP callbacks (inbound)

    def encrypted_id(self, staff_id: str) -> str:
        """Stable stand-in for DingTalk's encrypted ``senderId``/``dingtalkId`` of a user."""
        digest = hashlib.sha256(f"{self.corp_id}:{staff_id}".encode()).digest()
        return "$:LWCP_v1:$" + base64.b64encode(digest[:24]).decode()

    @property
    def chatbot_user_id(self) -> str:
        """The bot's own encrypted user id (``chatbotUserId``; it has no staffId)."""
        return self.encrypted_id(f"robot:{self.robot_code}")

    def robot_message(
        self,
        text: str,
        staff_id: str,
        nick: str,
        conversation_id: str = "cid123",
        conversation_title: str = "销售一组",
        conversation_type: str = "2",
        msg_id: str | None = None,
        at_users: Iterable[str] = (),
        *,
        is_admin: bool = False,
        create_at: int | None = None,
        session_webhook: str | None = None,
    ) -> dict[str, Any]:
        """The JSON DingTalk sends for a text @-message (HTTP callback body and Stream ``data``).

        Quirks reproduced: in groups ``text.content`` keeps the space left where ``@bot`` was removed;
        ``senderId``/``chatbotUserId``/``msgId`` are opaque encrypted ids (use ``senderStaffId``); ``atUsers``
        lists the bot (``dingtalkId`` only) plus every @-mentioned user; ``sessionWebhookExpiredTime`` is
        ``createAt + 90 min``. Single chats (``conversation_type="1"``) carry no ``conversationTitle``,
        ``isInAtList`` is false there and the content has no leading space ([L]: not documented).
        """
        now_ms = create_at if create_at is not None else int(self._wall_clock() * 1000)
        group = conversation_type == "2"
        at_list: list[dict[str, str]] = [{"dingtalkId": self.chatbot_user_id}] if group else []
        at_list += [{"dingtalkId": self.encrypted_id(s), "staffId": s} for s in at_users]
        payload: dict[str, Any] = {
            "msgtype": "text",
            "text": {"content": f" {text}" if group else text},
            "msgId": msg_id or f"msg{_random_alnum(22)}==",
            "createAt": now_ms,
            "conversationType": conversation_type,
            "conversationId": conversation_id,
        }
        if group:
            payload["conversationTitle"] = conversation_title
        payload.update(
            {
                "senderId": self.encrypted_id(staff_id),
                "senderNick": nick,
                "senderStaffId": staff_id,
                "senderCorpId": self.corp_id,
                "sessionWebhook": session_webhook or self.new_session_webhook(),
                "sessionWebhookExpiredTime": now_ms + SESSION_WEBHOOK_TTL_SECONDS * 1000,
                "isAdmin": is_admin,
                "chatbotCorpId": self.corp_id,
                "chatbotUserId": self.chatbot_user_id,
                "atUsers": at_list,
                "isInAtList": group,
                "robotCode": self.robot_code,
            }
        )
        return payload

    def sign_robot_callback(
        self, payload: Mapping[str, Any], *, timestamp: int | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Headers + body for POSTing ``payload`` to the bot as DingTalk does.

        ``timestamp`` (ms) overrides the wall clock, e.g. 2 h in the past for a stale-timestamp test; the
        ``sign`` is computed for whatever timestamp is sent. Without one, each callback is dated at least
        1 ms after the previous: a (timestamp, sign) pair stands for one message (the bot refuses a pair
        that comes back with another msgId), and a test's loop signs several within one millisecond.
        """
        if timestamp is None:
            timestamp = max(int(self._wall_clock() * 1000), self._last_robot_ts + 1)
            self._last_robot_ts = timestamp
        ts = timestamp
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "timestamp": str(ts),
            "sign": dingtalk_sign(self.app_secret, ts),
        }
        return headers, _dumps(payload).encode()

    def robot_text_callback(
        self,
        text: str,
        staff_id: str,
        nick: str,
        conversation_id: str = "cid123",
        conversation_title: str = "销售一组",
        conversation_type: str = "2",
        msg_id: str | None = None,
        at_users: Iterable[str] = (),
        *,
        timestamp: int | None = None,
        is_admin: bool = False,
    ) -> tuple[dict[str, str], bytes]:
        """A signed robot HTTP callback (PLATFORMS.md §3a) ready to POST to the bot.

        Returns ``(headers, body)``: headers ``timestamp`` (ms) and ``sign`` =
        base64(HMAC-SHA256(app_secret, f"{timestamp}\\n{app_secret}")), not URL-encoded. A fresh
        sessionWebhook is registered for it.
        """
        payload = self.robot_message(
            text,
            staff_id,
            nick,
            conversation_id,
            conversation_title,
            conversation_type,
            msg_id,
            at_users,
            is_admin=is_admin,
        )
        return self.sign_robot_callback(payload, timestamp=timestamp)

    # ------------------------------------------------------------------ sessionWebhook

    def new_session_webhook(self) -> str:
        """Register a sessionWebhook valid for 90 min (on ``clock``) and return its URL."""
        session = secrets.token_hex(16)
        self._sessions[session] = self._clock()
        return f"{self.oapi_base}/robot/sendBySession?session={session}"

    def expire_session_webhooks(self) -> None:
        """Make every sessionWebhook issued so far answer ``300001 session 不存在``."""
        for sid in self._sessions:
            self._sessions[sid] = float("-inf")

    def _h_session(self, request: web.Request, rec: ReceivedRequest) -> tuple[int, Any]:
        created = self._sessions.get(rec.query.get("session", ""))
        if created is None or self._clock() - created >= SESSION_WEBHOOK_TTL_SECONDS:
            return _legacy_error(SESSION_NOT_FOUND)
        if not request.content_type.startswith("application/json"):
            return _legacy_error(INVALID_CONTENT_TYPE)
        body = rec.json
        if not isinstance(body, dict) or body.get("msgtype") not in _ROBOT_MSGTYPES:
            return _legacy_error(CUSTOM_ROBOT_UNSUPPORTED_MSGTYPE)
        return 200, {"errcode": 0, "errmsg": "ok"}

    # ------------------------------------------------------------------ custom robot webhook

    def add_custom_robot(
        self, access_token: str, secret: str | None = None, *, keywords: Iterable[str] = ()
    ) -> str:
        """Register a group custom robot (群自定义机器人); returns its webhook URL (without sign params).

        ``secret`` (``SEC...``) turns on 加签; ``keywords`` turns on the keyword rule (content must contain
        at least one). The robot starts unthrottled.
        """
        self._custom_robots[access_token] = _CustomRobot(access_token, secret, tuple(keywords))
        return f"{self.oapi_base}/robot/send?access_token={access_token}"

    def fail_custom_robot(
        self, token: str, errcode: int, errmsg: str, for_seconds: float | None = None
    ) -> None:
        """Force every post to robot ``token`` to answer ``errcode``/``errmsg``.

        ``for_seconds=None`` keeps failing until :meth:`clear_custom_robot_failure`; otherwise the failure
        lifts after that many seconds of ``clock``. Useful codes: 400102 robot disabled, 400106 robot not
        found, 400013 group dissolved, 300005 "token is not exist", 130101 old-gateway rate limit.
        """
        robot = self._custom_robots[token]
        robot.forced = (errcode, errmsg)
        robot.forced_until = None if for_seconds is None else self._clock() + for_seconds

    def clear_custom_robot_failure(self, token: str) -> None:
        robot = self._custom_robots[token]
        robot.forced = robot.forced_until = None

    def custom_robot_blocked_until(self, token: str) -> float | None:
        """``clock`` time at which robot ``token``'s 410100 throttle ends (None if not throttled)."""
        robot = self._custom_robots[token]
        if robot.blocked_until is not None and self._clock() < robot.blocked_until:
            return robot.blocked_until
        return None

    def _h_custom_robot(self, request: web.Request, rec: ReceivedRequest) -> tuple[int, Any]:
        now = self._clock()
        robot = self._custom_robots.get(rec.query.get("access_token", ""))
        if robot is None:
            return _legacy_error(CUSTOM_ROBOT_TOKEN_NOT_FOUND)
        if robot.forced is not None:
            if robot.forced_until is None or now < robot.forced_until:
                return _legacy_error(robot.forced)
            robot.forced = robot.forced_until = None
        if not request.content_type.startswith("application/json"):
            return _legacy_error(INVALID_CONTENT_TYPE)
        if robot.secret is not None:
            # aiohttp decodes the query: a sign sent without URL-encoding has its '+' turned into ' '
            # and fails here exactly as on DingTalk.
            ts, sign = rec.query.get("timestamp", ""), rec.query.get("sign", "")
            if not ts.isdigit() or abs(self._wall_clock() * 1000 - int(ts)) > SIGN_MAX_SKEW_MS:
                return _legacy_error(SECURITY_INVALID_TIMESTAMP)
            if not hmac.compare_digest(sign.encode(), dingtalk_sign(robot.secret, ts).encode()):
                return _legacy_error(SECURITY_SIGN_NOT_MATCH)
        if robot.blocked_until is not None:
            if now < robot.blocked_until:
                return _legacy_error(CUSTOM_ROBOT_THROTTLED)
            robot.blocked_until = None
            robot.sent_at.clear()
        body = rec.json
        if not isinstance(body, dict) or body.get("msgtype") not in _ROBOT_MSGTYPES:
            return _legacy_error(CUSTOM_ROBOT_UNSUPPORTED_MSGTYPE)
        if robot.keywords and not any(k in _robot_text(body) for k in robot.keywords):
            return _legacy_error(SECURITY_KEYWORDS)
        while robot.sent_at and now - robot.sent_at[0] >= CUSTOM_ROBOT_WINDOW_SECONDS:
            robot.sent_at.popleft()
        if len(robot.sent_at) >= CUSTOM_ROBOT_RATE_LIMIT:
            robot.blocked_until = now + CUSTOM_ROBOT_BLOCK_SECONDS
            return _legacy_error(CUSTOM_ROBOT_THROTTLED)
        robot.sent_at.append(now)
        return 200, {"errcode": 0, "errmsg": "ok"}

    # ------------------------------------------------------------------ Robot OpenAPI (new host)

    def _check_robot_send(self, rec: ReceivedRequest) -> tuple[int, Any] | None:
        body = rec.json
        if not isinstance(body, dict):
            return _api_error(400, "Missingbody", "body is mandatory for this action.")
        if not body.get("robotCode"):
            return _api_error(400, "invalidParameter.robotCode.empty", "robotCode不能为空")
        if body["robotCode"] != self.robot_code:
            # DingTalk's own spelling ("notExsit").
            return _api_error(400, "invalidParameter.robotCode.notExsit", "robotCode不存在")
        msg_key = body.get("msgKey")
        if not msg_key:
            return _api_error(400, "invalidParameter.msgKey.empty", "msgKey不能为空")
        if msg_key not in _MSG_KEYS:
            return _api_error(400, "invalidParameter.msgKey.invalid", f"msgKey不合法: {msg_key}")
        msg_param = body.get("msgParam")
        if not isinstance(msg_param, str):
            # An object instead of a JSON string is the classic mistake.
            return _api_error(400, "invalidParameter.msgParam.invalid", "msgParam必须是json格式的字符串")
        if len(msg_param.encode()) > MSG_PARAM_MAX_BYTES:
            return _api_error(400, "invalidParameter.msgParam.tooLong", "msgParam超过长度限制")
        try:
            param = json.loads(msg_param)
        except ValueError:
            return _api_error(400, "invalidParameter.msgParam.invalid", "msgParam必须是json格式")
        if not isinstance(param, dict) or any(k not in param for k in _MSG_KEYS[msg_key]):
            return _api_error(400, "invalidParameter.msgParam.invalid", f"msgParam缺少{msg_key}所需字段")
        return None

    def _h_group(self, request: web.Request, rec: ReceivedRequest) -> tuple[int, Any]:
        if (err := self._api_auth(request)) is not None:
            return err
        if isinstance(rec.json, dict) and not rec.json.get("openConversationId"):
            return _api_error(400, "miss.openConversationId", "openConversationId不能为空")
        if (err := self._check_robot_send(rec)) is not None:
            return err
        return 200, {"processQueryKey": secrets.token_urlsafe(24)}

    def _h_oto(self, request: web.Request, rec: ReceivedRequest) -> tuple[int, Any]:
        if (err := self._api_auth(request)) is not None:
            return err
        body = rec.json
        if isinstance(body, dict):
            user_ids = body.get("userIds")
            if not isinstance(user_ids, list) or not user_ids:
                return _api_error(400, "invalidParameter.userIds.empty", "userIds不能为空")
            if len(user_ids) > OTO_MAX_USERS:
                return _api_error(400, "invalidParameter.userIds.overMax", f"userIds最多{OTO_MAX_USERS}个")
        if (err := self._check_robot_send(rec)) is not None:
            return err
        invalid = (
            [u for u in body["userIds"] if u not in self.valid_staff_ids] if self.valid_staff_ids is not None else []
        )
        return 200, {
            "processQueryKey": secrets.token_urlsafe(24),
            "invalidStaffIdList": invalid,
            "flowControlledStaffIdList": [],
        }

    # ------------------------------------------------------------------ work notification (legacy host)

    def _h_work_notification(self, request: web.Request, rec: ReceivedRequest) -> tuple[int, Any]:
        if (err := self._legacy_auth(rec)) is not None:
            return err
        body = rec.json
        if not isinstance(body, dict):
            return _legacy_error(INVALID_PARAMETER)
        try:
            agent_id = int(body.get("agent_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return _legacy_error(INVALID_PARAMETER)
        if agent_id != self.agent_id:
            return _legacy_error(WRONG_AGENT_ID)
        # userid_list / dept_id_list are comma-separated *strings*, not JSON arrays.
        for name in ("userid_list", "dept_id_list"):
            if name in body and not isinstance(body[name], str):
                return _legacy_error(INVALID_PARAMETER)
        if not (body.get("userid_list") or body.get("dept_id_list") or body.get("to_all_user") is True):
            return _legacy_error(INVALID_PARAMETER)
        msg = body.get("msg")
        if not isinstance(msg, dict) or msg.get("msgtype") not in _WORK_MSGTYPES:
            # Note `action_card` (snake_case) here vs `actionCard` for robots.
            return _legacy_error(INVALID_PARAMETER)
        if not isinstance(msg.get(msg["msgtype"]), dict):
            return _legacy_error(INVALID_PARAMETER)
        return 200, {"errcode": 0, "task_id": next(self._task_ids), "request_id": _request_id()}

    def _h_unknown(self, request: web.Request, rec: ReceivedRequest) -> tuple[int, Any]:
        return 404, {"errcode": 404, "errmsg": f"请求的URI地址不存在 (fake DingTalk: {request.method} {request.path})"}

    # ------------------------------------------------------------------ event subscription crypto (§3c)

    def _encrypt(self, plaintext: str, nonce: str, timestamp: str, random_prefix: str | None) -> dict[str, str]:
        if random_prefix is None:
            return dict(self._crypto.encrypt_message(plaintext, nonce, timestamp))
        if len(random_prefix) != 16:
            raise ValueError("random_prefix must be 16 characters")

        class _FixedRandom(PrpCrypto):  # type: ignore[misc]
            def get_random_string(self) -> str:
                return random_prefix  # type: ignore[return-value]

        return dict(self._crypto._encrypt_message(plaintext, nonce, timestamp, _FixedRandom))

    def event_callback(
        self,
        event: Mapping[str, Any] | str,
        *,
        timestamp: int | str | None = None,
        nonce: str | None = None,
        random_prefix: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """An encrypted event-subscription callback, as DingTalk POSTs it to the bot.

        Returns ``(query_params, body)``: query ``signature`` (and its alias ``msg_signature``), ``timestamp``
        (ms) and ``nonce``; body ``{"encrypt": "..."}``. ``event`` dicts are serialised as compact JSON.
        ``timestamp``/``nonce``/``random_prefix`` (16 chars) make the ciphertext deterministic for vectors.
        The bot must answer within 1500 ms with an encrypted "success" (see :meth:`decrypt_event_response`).
        """
        plaintext = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        ts = str(timestamp) if timestamp is not None else str(int(self._wall_clock() * 1000))
        envelope = self._encrypt(plaintext, nonce or _random_alnum(8), ts, random_prefix)
        query = {
            "signature": envelope["msg_signature"],
            "msg_signature": envelope["msg_signature"],
            "timestamp": envelope["timeStamp"],
            "nonce": envelope["nonce"],
        }
        return query, _dumps({"encrypt": envelope["encrypt"]}).encode()

    def open_event_callback(self, query: Mapping[str, str], body: bytes | str) -> str:
        """Inverse of :meth:`event_callback`: verify and decrypt a callback (query + ``{"encrypt"}`` body)."""
        data = json.loads(body)
        signature = query.get("signature") or query.get("msg_signature") or ""
        timestamp = query.get("timestamp") or query.get("timeStamp") or ""
        return self._open(signature, timestamp, query.get("nonce", ""), data.get("encrypt", ""))

    def decrypt_event_response(self, body: bytes | str) -> str:
        """Verify the bot's answer to an event callback and return its plaintext (expected ``"success"``).

        The answer must be JSON with ``msg_signature``, ``timeStamp``, ``nonce`` and ``encrypt`` (note the
        camel-case ``timeStamp``); the signature is checked before decrypting and the receive-id inside the
        ciphertext must equal ``event_owner_key``. Raises :class:`EventResponseError` otherwise.
        """
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise EventResponseError(f"event response is not JSON: {body!r}") from exc
        missing = {"msg_signature", "timeStamp", "nonce", "encrypt"} - set(data) if isinstance(data, dict) else None
        if missing is None or missing:
            raise EventResponseError(f"event response lacks {sorted(missing or [])}: {data!r}")
        return self._open(str(data["msg_signature"]), str(data["timeStamp"]), str(data["nonce"]), str(data["encrypt"]))

    def _open(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        expected = _event_signature(self.event_token, timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected, signature):
            raise EventResponseError("event signature mismatch")
        try:
            return str(self._crypto.decrypt_encrypt_str(signature, timestamp, nonce, encrypt))
        except InvalidSignatureException as exc:  # pragma: no cover - checked above
            raise EventResponseError("event signature mismatch") from exc
        except InvalidCorpIdOrSuiteKeyException as exc:
            raise EventResponseError(f"ciphertext is not for receive-id {self.event_owner_key!r}") from exc
        except Exception as exc:  # bad base64 / padding / length prefix: the SDK raises assorted errors
            raise EventResponseError(f"cannot decrypt event ciphertext: {exc!r}") from exc

    # ------------------------------------------------------------------ Stream mode (§3b)

    def _h_stream_open(self, request: web.Request, rec: ReceivedRequest) -> tuple[int, Any]:
        body = rec.json
        if not isinstance(body, dict):
            return _api_error(400, "Missingbody", "body is mandatory for this action.")
        if body.get("clientId") != self.app_key or body.get("clientSecret") != self.app_secret:
            return _api_error(401, *STREAM_AUTH_FAILED)
        subs = body.get("subscriptions")
        if not isinstance(subs, list) or not subs or not all(isinstance(s, dict) for s in subs):
            return _api_error(400, "invalidParameter.subscriptions", "subscriptions不能为空")
        ticket = str(uuid.uuid4())
        self._tickets[ticket] = _Ticket(subscriptions=subs)
        return 200, {"endpoint": f"ws://{self.host}:{self._api_port}/stream", "ticket": ticket}

    async def _h_stream_ws(self, request: web.Request) -> web.StreamResponse:
        ticket_value = request.query.get("ticket", "")
        rec = ReceivedRequest(
            kind="stream_connect",
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k: request.headers[k] for k in _RECORDED_HEADERS if k in request.headers},
            json=None,
            body=b"",
            time=self._clock(),
        )
        ticket = self._tickets.get(ticket_value)
        if ticket is None or ticket.used:
            # Choice: tickets are one-shot (the SDK re-opens for every reconnect); a reused/unknown ticket is
            # refused before the upgrade with HTTP 401.
            status, payload = _api_error(401, "invalidTicket", "ticket不存在或已被使用")
            rec.status, rec.response = status, payload
            self.received.append(rec)
            await self._notify()
            return web.json_response(payload, status=status, dumps=_dumps)
        ticket.used = True
        ws = web.WebSocketResponse(timeout=2.0, autoping=True)
        await ws.prepare(request)
        conn = _StreamConn(ws=ws, connection_id=str(uuid.uuid4()), subscriptions=ticket.subscriptions)
        rec.status, rec.response = 101, {"connectionId": conn.connection_id}
        self.received.append(rec)
        self._stream_active.append(conn)
        self.stream_connections += 1
        await self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_stream_text(conn, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            if conn in self._stream_active:
                self._stream_active.remove(conn)
            await self._notify()
        return ws

    async def _on_stream_text(self, conn: _StreamConn, text: str) -> None:
        try:
            frame: Any = json.loads(text)
        except ValueError:
            frame = None
        headers = frame.get("headers") if isinstance(frame, dict) else None
        is_ack = isinstance(frame, dict) and "code" in frame and isinstance(headers, dict) and "messageId" in headers
        rec = ReceivedRequest(
            kind="stream_ack" if is_ack else "stream_frame",
            method="WS",
            path="/stream",
            query={},
            headers={"connection-id": conn.connection_id},
            json=frame,
            body=text.encode(),
            time=self._clock(),
            status=200,
        )
        self.received.append(rec)
        if is_ack:
            assert isinstance(frame, dict) and isinstance(headers, dict)
            mid = str(headers["messageId"])
            self.stream_acks.append(
                StreamAck(
                    message_id=mid,
                    code=frame.get("code"),
                    message=frame.get("message"),
                    headers=headers,
                    data=frame.get("data"),
                    raw=frame,
                    frame=self._frames_by_id.get(mid),
                    time=self._clock(),
                )
            )
        await self._notify()

    @property
    def stream_connected(self) -> bool:
        """True while at least one Stream socket is open."""
        return bool(self._stream_active)

    async def _stream_conn(self, timeout: float) -> _StreamConn:
        try:
            await self.wait_for(lambda: self.stream_connected, timeout)
        except TimeoutError:
            raise StreamNotConnected(f"no Stream client connected within {timeout}s") from None
        return self._stream_active[-1]  # newest connection, like a gateway preferring the live socket

    async def _stream_send(
        self,
        conn: _StreamConn,
        frame_type: str,
        topic: str,
        data: Mapping[str, Any],
        extra_headers: Mapping[str, str] | None = None,
    ) -> str:
        message_id = f"{uuid.uuid4().hex[:8]}_{uuid.uuid4().hex[:8]}"
        frame = {
            "specVersion": "1.0",
            "type": frame_type,
            "headers": {
                "appId": self.stream_app_id,
                "connectionId": conn.connection_id,
                "contentType": "application/json",
                "messageId": message_id,
                "time": str(int(self._wall_clock() * 1000)),
                "topic": topic,
                **(extra_headers or {}),
            },
            "data": _dumps(dict(data)),  # a JSON *string* inside the JSON frame
        }
        self._frames_by_id[message_id] = frame
        self.stream_sent.append(frame)
        await conn.ws.send_str(_dumps(frame))
        return message_id

    async def stream_send_raw(self, text: str, *, timeout: float = 5.0) -> None:
        """Send `text` as it is on the Stream socket: a malformed frame, as a broken gateway might."""
        conn = await self._stream_conn(timeout)
        await conn.ws.send_str(text)

    async def stream_push_robot_message(
        self,
        text: str,
        staff_id: str,
        nick: str,
        conversation_id: str = "cid123",
        conversation_title: str = "销售一组",
        conversation_type: str = "2",
        msg_id: str | None = None,
        at_users: Iterable[str] = (),
        *,
        is_admin: bool = False,
        timeout: float = 5.0,
    ) -> str:
        """Push a robot @-message as a CALLBACK frame (topic ``/v1.0/im/bot/messages/get``); returns messageId.

        ``data`` is the same JSON as the HTTP callback (:meth:`robot_message`), serialised to a string. Waits
        up to ``timeout`` for a connected client; raises :class:`StreamSubscriptionError` if that client did
        not subscribe ``{"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}``.
        """
        conn = await self._stream_conn(timeout)
        if not any(s.get("type") == "CALLBACK" and s.get("topic") == ROBOT_MESSAGE_TOPIC for s in conn.subscriptions):
            raise StreamSubscriptionError(
                f"client subscribed {conn.subscriptions!r}; robot messages need "
                f'{{"type": "CALLBACK", "topic": "{ROBOT_MESSAGE_TOPIC}"}}'
            )
        payload = self.robot_message(
            text,
            staff_id,
            nick,
            conversation_id,
            conversation_title,
            conversation_type,
            msg_id,
            at_users,
            is_admin=is_admin,
        )
        return await self._stream_send(conn, "CALLBACK", ROBOT_MESSAGE_TOPIC, payload)

    async def stream_push_event(
        self, event_type: str, data: Mapping[str, Any], *, event_id: str | None = None, timeout: float = 5.0
    ) -> str:
        """Push an org event as an EVENT frame (needs an ``EVENT`` subscription for ``*`` or the type)."""
        conn = await self._stream_conn(timeout)
        if not any(s.get("type") == "EVENT" and s.get("topic") in ("*", event_type) for s in conn.subscriptions):
            raise StreamSubscriptionError(f"client subscribed {conn.subscriptions!r}; no EVENT subscription")
        now_ms = str(int(self._wall_clock() * 1000))
        extra = {
            "eventType": event_type,
            "eventId": event_id or uuid.uuid4().hex,
            "eventBornTime": now_ms,
            "eventCorpId": self.corp_id,
            "eventUnifiedAppId": self.stream_app_id,
        }
        return await self._stream_send(conn, "EVENT", event_type, data, extra)

    async def stream_ping(self, *, timeout: float = 5.0) -> str:
        """Send a SYSTEM ``ping`` frame (data ``{"opaque": ...}``); returns its messageId.

        The client must ack with ``code`` 200 and the same ``data`` — check with :meth:`stream_wait_ack`.
        """
        conn = await self._stream_conn(timeout)
        return await self._stream_send(conn, "SYSTEM", "ping", {"opaque": str(uuid.uuid4())})

    async def stream_send_disconnect(self, reason: str = "server is going to restart", *, timeout: float = 5.0) -> str:
        """Send the SYSTEM ``disconnect`` notice the gateway sends before closing a socket (client should
        reconnect with a new ticket). The socket stays open until :meth:`stream_drop`."""
        conn = await self._stream_conn(timeout)
        return await self._stream_send(conn, "SYSTEM", "disconnect", {"reason": reason})

    async def stream_drop(self) -> int:
        """Close every open Stream socket (code 1001); returns how many were closed.

        The client should re-open the connection (``/v1.0/gateway/connections/open`` → new ticket).
        """
        conns = list(self._stream_active)
        for conn in conns:
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"fake drop")
        if conns:
            await self.wait_for(lambda: not any(c in self._stream_active for c in conns), timeout=5.0)
        return len(conns)

    async def stream_wait_ack(self, message_id: str, timeout: float = 5.0) -> StreamAck:
        """Wait for the client's ack of frame ``message_id`` and return it."""

        def find() -> StreamAck | None:
            return next((a for a in self.stream_acks if a.message_id == message_id), None)

        ack = await self.wait_for(find, timeout)
        assert ack is not None
        return ack


def _robot_text(body: Mapping[str, Any]) -> str:
    """All user-visible text of a robot message (for the keyword security rule)."""
    parts: list[str] = []
    msgtype = body.get("msgtype")
    section = body.get(msgtype) if isinstance(msgtype, str) else None
    if isinstance(section, dict):
        for key in ("content", "title", "text"):
            if isinstance(section.get(key), str):
                parts.append(section[key])
        for link in section.get("links", []) or []:
            if isinstance(link, dict) and isinstance(link.get("title"), str):
                parts.append(link["title"])
    return "\n".join(parts)
