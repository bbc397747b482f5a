"""What every adapter does the same way: bounded request bodies, refusing a callback, splitting a reply
into outbox rows, and calling a platform API with a token that may have been revoked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from bot.adapters.tokens import TokenCache
from bot.delivery import OutgoingMessage, RetryLater, split_text

if TYPE_CHECKING:
    from storage.store import Store

MAX_BODY_BYTES = 64 * 1024

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


async def read_body(request: web.Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused (413) past `max_bytes` whether or not the client announced its length."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise Rejected(413, f"body of {request.content_length} bytes over {max_bytes // 1024} KB")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Rejected(413, f"body over {max_bytes // 1024} KB") from None
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
) -> None:
    """One outbox row per part of `message` split under `max_bytes`, all in the caller's transaction.

    Rows share `dest_key`, so they are sent in order. Where the title is a notification title
    (DingTalk) every part carries it; where it is rendered into the text (WeCom) only the first does.
    `dedup` makes a second enqueue of the same message a no-op (one key per part).
    """
    for index, part in enumerate(split_text(message.text, max_bytes)):
        title = message.title if title_on_every_part or index == 0 else None
        await store.enqueue(
            platform=platform,
            destination=destination,
            dest_key=dest_key,
            body=OutgoingMessage(part, title, message.names).to_json(),
            now=now,
            dedup_key=f"{dedup}:{index}" if dedup else None,
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
