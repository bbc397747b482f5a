"""What every adapter does the same way: bounded request bodies, refusing a callback, reading the values
of a request that no signature covers yet, splitting a reply into outbox rows, calling a platform API
with a token that may have been revoked, and never following a platform's redirect.

Everything a callback carries before its signature holds is attacker-controlled: the helpers here turn
any malformed value (non-ASCII bytes in a header, a timestamp of 5000 digits, a body that never ends)
into a `Rejected` — one log line and a 4xx — never into an exception that reaches aiohttp as a 500.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from bot.adapters.tokens import TokenCache
from bot.app_keys import SETTINGS_KEY
from bot.delivery import OutgoingMessage, PermanentFailure, RetryLater, split_text

if TYPE_CHECKING:
    from storage.store import Store

MAX_BODY_BYTES = 64 * 1024
# A timestamp in seconds or milliseconds has 10 or 13 digits until the year 2286; more is malformed
# (and int() of thousands of digits is slow, past 4300 digits a ValueError).
MAX_TIMESTAMP_DIGITS = 16
DEFAULT_BODY_TIMEOUT_S = 10.0

T = TypeVar("T")


class Rejected(Exception):
    """A callback we refuse; `status` is the HTTP answer, `reason` is logged (never a secret or payload)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def rejection(log: logging.Logger, route: str, err: Rejected, remote: str | None) -> web.Response:
    """The one answer to a refused callback: its 4xx and one log line — neither carries a secret."""
    log.warning("%s rejected status=%d reason=%s remote=%s", route, err.status, err.reason, remote)
    return web.json_response({"errcode": err.status, "errmsg": "rejected"}, status=err.status)


def timestamp_value(value: str | None, max_digits: int = MAX_TIMESTAMP_DIGITS) -> int:
    """A timestamp header or query value as an int, or a 400: ASCII digits only (`"²".isdigit()` is true
    and `int("²")` fails) and at most `max_digits` of them."""
    if not value or len(value) > max_digits or not (value.isascii() and value.isdigit()):
        raise Rejected(400, "malformed timestamp")
    return int(value)


def string_field(payload: dict[str, Any], key: str, max_len: int) -> str | None:
    """`payload[key]` if a string of at most `max_len` characters (the column it is written to); None if
    absent or empty; a 400 for anything else — never `str()` of an object turned into an id."""
    value = payload.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Rejected(400, f"{key} is not a string")
    if len(value) > max_len:
        raise Rejected(400, f"{key} longer than {max_len} characters")
    return value


def same_signature(expected: str, given: str) -> bool:
    """Constant-time comparison of the signature we computed with the one a request carries, whatever
    characters the latter holds (`compare_digest` refuses non-ASCII str, and a header's undecodable bytes
    arrive as lone surrogates that a plain `.encode()` refuses)."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def _body_timeout(request: web.Request) -> float:
    settings = request.app.get(SETTINGS_KEY)
    return float(settings.body_timeout_s) if settings is not None else DEFAULT_BODY_TIMEOUT_S


async def read_body(request: web.Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused (413) past `max_bytes` whether or not the client announced its length,
    (408) when it has not all arrived within the body timeout (a client dripping it byte by byte), and
    (400) when the client goes away before sending all of it — one log line, not aiohttp's traceback."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise Rejected(413, f"body of {request.content_length} bytes over {max_bytes // 1024} KB")
    timeout = _body_timeout(request)
    try:
        if request.content.is_eof():  # all of it arrived with the headers (a callback's usual case): no wait
            body = await request.read()
        else:
            async with asyncio.timeout(timeout):
                body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Rejected(413, f"body over {max_bytes // 1024} KB") from None
    except TimeoutError:
        raise Rejected(408, f"body not received within {timeout:g} s") from None
    except (ConnectionError, web.RequestPayloadError) as err:
        raise Rejected(400, f"body incomplete: {type(err).__name__}") from None
    if len(body) > max_bytes:
        raise Rejected(413, f"body over {max_bytes // 1024} KB")
    return body


async def enqueue_split(
    store: Store,
    platform: str,
    destination: dict[str, Any],
    dest_key: str,
    message: OutgoingMessage,
    now: datetime,
    max_bytes: int,
    *,
    title_on_every_part: bool,
    dedup: str | None = None,
    not_before: datetime | None = None,
) -> None:
    """One outbox row per part of `message` split under `max_bytes`, all in the caller's transaction.

    Rows share `dest_key`, so they are sent in order. Where the title is a notification title
    (DingTalk) every part carries it; where it is rendered into the text (WeCom) only the first does.
    `dedup` makes a second enqueue of the same message a no-op (one key per part); `not_before` holds them back.
    """
    parts = split_text(message.text, max_bytes)
    for index, part in enumerate(parts):
        title = message.title if title_on_every_part or index == 0 else None
        image = message.image if index == len(parts) - 1 else None  # a picture's caption is one part
        await store.enqueue(
            platform=platform,
            destination=destination,
            dest_key=dest_key,
            body=OutgoingMessage(part, title, message.names, image).to_json(),
            now=now,
            dedup_key=f"{dedup}:{index}" if dedup else None,
            not_before=not_before,
        )


async def with_fresh_token(
    tokens: TokenCache, call: Callable[[str], Awaitable[T]], token_rejected: Callable[[T], bool]
) -> T:
    """`call(token)` with the cached token; if the platform says the token is dead (revoked before its
    expiry), forget that token and call once more with a fresh one. Rejected twice: try again later."""
    for _attempt in (1, 2):
        token = await tokens.get()
        result = await call(token)
        if not token_rejected(result):
            return result
        tokens.invalidate(token)
    raise RetryLater("access token rejected twice")


# ------------------------------------------------------------------ platform HTTP: redirects are never followed
# A platform API never answers 3xx (PLATFORMS.md documents none). One that does — a mistyped base URL, a
# proxy, a hijacked name, a forged callback URL on the allowed host — must not make the bot re-send the reply,
# its access token or its webhook key to whatever host the redirect names. Every platform call goes through
# `platform_request` (allow_redirects=False; a 3xx is a delivery failure; tests/test_redirects.py checks that no
# module calls a session's HTTP methods itself), and the long connections' session refuses to follow one anyway
# (`long_connection_session`): aiohttp's ws_connect has no per-request switch.

http_log = logging.getLogger("salesbot.http")


class RedirectRefused(PermanentFailure):
    """A platform call answered 3xx. Permanent: the host we were told to use sent us elsewhere, and no retry
    of ours changes that — each one would only ask the same host again. The row fails with the status and the
    hosts in its reason (never the path or query: they carry keys and tokens); once the operator has fixed the
    base URL or the network, `salesbot outbox retry --failed` sends it again."""


def _host(url: URL | str) -> str:
    try:
        parsed = url if isinstance(url, URL) else URL(url)
    except (TypeError, ValueError):
        return "?"
    host = parsed.host or "?"
    return f"{host}:{parsed.port}" if parsed.port and not parsed.is_default_port() else host


def refuse_redirect(what: str, resp: aiohttp.ClientResponse) -> RedirectRefused:
    """Log the refused redirect (one line: status, host, where it pointed — hosts only) and the error to raise."""
    source, target = _host(resp.url), _host(resp.headers.get("Location", ""))
    http_log.warning("%s: HTTP %d redirect from %s to %s refused (platform calls never follow redirects)",
                     what, resp.status, source, target)
    return RedirectRefused(f"{what}: HTTP {resp.status} redirect from {source} to {target} refused")


@asynccontextmanager
async def platform_request(
    session: aiohttp.ClientSession, method: str, url: str | URL, *, what: str, **kwargs: Any
) -> AsyncIterator[aiohttp.ClientResponse]:
    """`session.request(...)` that never follows a redirect: a 3xx answer raises `RedirectRefused`.

    `what` names the call in the log line and the failure reason ("message/send", "sessionWebhook").
    """
    async with session.request(method, url, allow_redirects=False, **kwargs) as resp:
        if 300 <= resp.status < 400:
            raise refuse_redirect(what, resp)
        yield resp


class RedirectBlocked(aiohttp.ClientResponseError):
    """Raised by the process session when a call that did not go through `platform_request` got a 3xx."""


async def _on_redirect(
    session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestRedirectParams
) -> None:
    resp = params.response
    source, target = _host(resp.url), _host(resp.headers.get("Location", ""))
    http_log.warning("HTTP %d redirect from %s to %s refused (platform calls never follow redirects)",
                     resp.status, source, target)
    resp.close()
    raise RedirectBlocked(resp.request_info, (resp,), status=resp.status, message="redirect refused")


def platform_session(**kwargs: Any) -> aiohttp.ClientSession:
    """The process's session for platform API calls, all made through `platform_request`.

    Untraced: aiohttp runs a trace's hooks at every step of every request, ~30 µs of a reply's ~80 µs
    POST; `platform_request` already refuses redirects for each call.
    """
    kwargs.setdefault("json_serialize", _json_body)
    return aiohttp.ClientSession(**kwargs)


def _json_body(value: Any) -> str:
    return orjson.dumps(value).decode()


def long_connection_session(**kwargs: Any) -> aiohttp.ClientSession:
    """The session long connections open on: a redirect answered to any call on it is refused before it is
    followed (aiohttp's `ws_connect` has no `allow_redirects`; a long connection's first frame carries the
    bot secret)."""
    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(_on_redirect)
    return aiohttp.ClientSession(trace_configs=[trace, *kwargs.pop("trace_configs", [])], **kwargs)
