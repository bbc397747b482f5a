"""The test server every app test runs: aiohttp's TestServer with the runner `salesbot serve` uses
(`bot.app.make_runner`), so the tests exercise the same slow-client protection (header and body read
timeouts) as production."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.app import make_runner
from bot.app_keys import SETTINGS_KEY


class AppServer(TestServer):
    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return make_runner(self.app, self.app[SETTINGS_KEY], **kwargs)


async def wait_healthz(port: int, *, exited: Callable[[], bool] = lambda: False) -> None:
    """Until a `salesbot serve` on `port` answers /healthz with 200 (30 s at most); `exited` tells when
    the process died during start-up, so the test fails at once with the reason."""
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            assert not exited(), "serve exited during start-up"
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"serve on port {port} did not answer /healthz")
