"""Access-token cache shared by the platform deliverers.

Minimal stand-in with the API the outbox branch provides (`TokenCache(fetch, clock, margin)`,
`get()`, `invalidate(token)`); the lead keeps the outbox branch's version at merge.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenCache:
    """Caches one token; refreshes `margin` seconds before it expires, one fetch at a time."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[tuple[str, float]]],
        clock: Callable[[], float] = time.monotonic,
        margin: float = 300,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._margin = margin
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        if self._token is not None and self._clock() < self._expires_at - self._margin:
            return self._token
        async with self._lock:  # single flight: waiters reuse the token the first caller fetched
            if self._token is not None and self._clock() < self._expires_at - self._margin:
                return self._token
            token, expires_in = await self._fetch()
            self._token, self._expires_at = token, self._clock() + expires_in
            return token

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token (only if it is still `token`, so a fresh one is not thrown away)."""
        if token is None or token == self._token:
            self._token = None
            self._expires_at = 0.0
