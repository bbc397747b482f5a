"""The test server every app test runs: aiohttp's TestServer with the runner `salesbot serve` uses
(`bot.app.make_runner`), so the tests exercise the same slow-client protection (header and body read
timeouts) as production."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.app import make_runner
from bot.app_keys import SETTINGS_KEY


class AppServer(TestServer):
    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return make_runner(self.app, self.app[SETTINGS_KEY], **kwargs)
