"""An app's access token is fetched once for everyone, refreshed before it dies, and once after the
platform rejects it — never a burst of gettoken calls (WeCom blocks apps that hammer it, §2b)."""

from __future__ import annotations

import asyncio
import contextlib

from bot.adapters.tokens import TokenCache


class Fetcher:
    def __init__(self, expires_in: float = 7200.0) -> None:
        self.calls = 0
        self.expires_in = expires_in
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self) -> tuple[str, float]:
        self.calls += 1
        await self.gate.wait()
        return f"token-{self.calls}", self.expires_in


async def test_concurrent_senders_share_one_refresh() -> None:
    fetch = Fetcher()
    fetch.gate.clear()
    cache = TokenCache(fetch, clock=lambda: 0.0)
    waiting = [asyncio.create_task(cache.get()) for _ in range(50)]
    await asyncio.sleep(0)  # let every task reach the lock
    fetch.gate.set()
    assert set(await asyncio.gather(*waiting)) == {"token-1"}
    assert fetch.calls == 1


async def test_the_token_is_renewed_shortly_before_it_expires() -> None:
    now = [0.0]
    fetch = Fetcher(expires_in=7200)
    cache = TokenCache(fetch, clock=lambda: now[0], margin=300)
    assert await cache.get() == "token-1"
    now[0] = 6899
    assert await cache.get() == "token-1"
    now[0] = 6900
    assert await cache.get() == "token-2"


async def test_a_rejected_token_is_refreshed_once_even_if_many_senders_saw_it_fail() -> None:
    fetch = Fetcher()
    cache = TokenCache(fetch, clock=lambda: 0.0)
    stale = await cache.get()
    cache.invalidate(stale)
    assert await cache.get() == "token-2"
    cache.invalidate(stale)  # a slower sender reporting the same old token changes nothing
    assert await cache.get() == "token-2"
    assert fetch.calls == 2


async def test_a_short_lived_token_is_still_used_for_half_its_life() -> None:
    now = [0.0]
    fetch = Fetcher(expires_in=100)
    cache = TokenCache(fetch, clock=lambda: now[0], margin=300)
    await cache.get()
    now[0] = 49
    assert await cache.get() == "token-1"
    now[0] = 50
    assert await cache.get() == "token-2"


async def test_a_failed_fetch_is_not_cached() -> None:
    calls = 0

    async def flaky() -> tuple[str, float]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("gettoken unreachable")
        return "ok", 7200.0

    cache = TokenCache(flaky, clock=lambda: 0.0)
    with contextlib.suppress(ConnectionError):
        await cache.get()
    assert await cache.get() == "ok"
