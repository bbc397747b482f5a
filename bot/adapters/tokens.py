"""Access-token cache shared by every concurrent send of one app (WeCom gettoken, DingTalk app token).

Platforms throttle token endpoints (WeCom blocks an app for an hour after too many failing calls, §2b),
and a token is valid for everyone until it expires. So: one cached token per app, refreshed shortly
before expiry, one refresh at a time (concurrent callers await the same refresh), and on a token-expired
errcode the caller invalidates *the token it used* — if another caller already refreshed, nothing is
fetched again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

TokenFetch = Callable[[], Awaitable[tuple[str, float]]]


class TokenCache:
    """`await cache.get()` → a valid token; `cache.invalidate(token)` after the platform rejected it.

    `fetch()` returns `(token, expires_in_seconds)`. `clock` is monotonic seconds; `margin` seconds before
    expiry the token counts as expired, so a send never leaves with a token that dies in transit.
    """

    def __init__(self, fetch: TokenFetch, clock: Callable[[], float] = time.monotonic, margin: float = 300.0) -> None:
        self._fetch = fetch
        self._clock = clock
        self._margin = margin
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.refreshes = 0

    def _valid(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at

    async def get(self) -> str:
        if self._valid():
            return self._token  # type: ignore[return-value]
        async with self._lock:
            if not self._valid():  # another caller may have refreshed while we waited for the lock
                token, expires_in = await self._fetch()
                self.refreshes += 1
                self._token = token
                # A token shorter-lived than the margin is still used, for half its life.
                margin = self._margin if expires_in > 2 * self._margin else expires_in / 2
                self._expires_at = self._clock() + expires_in - margin
            return self._token  # type: ignore[return-value]

    def invalidate(self, token: str) -> None:
        """Forget `token` if it is still the cached one (e.g. WeCom 40014/42001, DingTalk token expired)."""
        if token == self._token:
            self._token = None
            self._expires_at = 0.0
