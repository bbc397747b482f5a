"""Access-token cache shared by everything that calls a platform API with an app token.

Minimal version for the `wecom` branch; the outbox branch owns the real one (same API). One refresh
at a time: concurrent callers wait on the same lock instead of each calling gettoken, which WeCom
throttles (PLATFORMS.md §2b).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenCache:
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

    def _valid(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at

    async def get(self) -> str:
        if self._valid():
            return self._token  # type: ignore[return-value]
        async with self._lock:
            if not self._valid():
                token, expires_in = await self._fetch()
                self._token = token
                self._expires_at = self._clock() + max(float(expires_in) - self._margin, 0.0)
            return self._token  # type: ignore[return-value]

    def invalidate(self, token: str) -> None:
        """Forget `token` if it is still the cached one (a later refresh is not thrown away)."""
        if self._token == token:
            self._token = None
            self._expires_at = 0.0
