"""A second loopback server that only records: where a fake platform's redirect points.

A platform call that follows a redirect arrives here (method, path, query, headers, body — token and key
included), answered with what a platform says on success, so a bot that followed would even believe it
had delivered. The redirect tests assert that nothing ever arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class TrappedRequest:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes


class RedirectTrap:
    """`async with RedirectTrap() as trap:` — `trap.base_url` to redirect to, `trap.received` to check."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.received: list[TrappedRequest] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> RedirectTrap:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._record)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _record(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(TrappedRequest(request.method, request.path_qs, dict(request.headers), body))
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": "stolen", "expires_in": 7200,
                                  "accessToken": "stolen", "expireIn": 7200})


@asynccontextmanager
async def redirect_trap() -> AsyncIterator[RedirectTrap]:
    async with RedirectTrap() as trap:
        yield trap
