"""The aiohttp application: one process serving every platform, the scheduler and the outbox.

Nothing starts at import time. Resources (database engine, HTTP client session, workers) open and
close in aiohttp's cleanup context, so tests can build and tear down as many apps as they like.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web

from bot.adapters.common import platform_session
from bot.app_keys import (
    DATABASE_KEY,
    DELIVERERS_KEY,
    HTTP_SESSION_KEY,
    REPLY_SINKS_KEY,
    ROUTER_KEY,
    SETTINGS_KEY,
)
from bot.assembly import build_router, open_database
from bot.settings import Settings
from storage.database import Database

log = logging.getLogger("salesbot.app")

# A component adds routes and lifecycle to the app (a platform adapter, the outbox, the scheduler).
Component = Callable[[web.Application], None]


async def healthz(request: web.Request) -> web.Response:
    db = request.app[DATABASE_KEY]
    ok = await db.ping()
    body = {"status": "ok" if ok else "degraded", "database": "ok" if ok else "unreachable"}
    return web.json_response(body, status=200 if ok else 503)


def build_app(
    settings: Settings, *, components: list[Component] | None = None, database: Database | None = None
) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[SETTINGS_KEY] = settings

    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        db = database or open_database(settings)
        await db.prepare()
        app[DATABASE_KEY] = db
        app[ROUTER_KEY] = build_router(db, settings, reply_sink=_platform_sink(app[REPLY_SINKS_KEY]))
        yield
        if database is None:
            await db.close()

    app[REPLY_SINKS_KEY] = {}
    app[DELIVERERS_KEY] = {}

    async def http_session_ctx(app: web.Application) -> AsyncIterator[None]:
        # Every platform call of this process uses this session; it never follows a redirect.
        session = platform_session(timeout=aiohttp.ClientTimeout(total=10))
        app[HTTP_SESSION_KEY] = session
        yield
        await session.close()

    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(http_session_ctx)
    app.router.add_get("/healthz", healthz)
    for component in default_components(settings) if components is None else components:
        component(app)
    return app


def runner_options(settings: Settings) -> dict[str, Any]:
    """How every server of the app treats slow clients (see `make_runner`)."""
    # aiohttp's keep-alive timer starts when a connection opens and again after each answer, and closes
    # the connection if no complete request head has arrived by then; bytes dripping in do not push it
    # back. So it is the header read timeout (and the idle keep-alive limit): 500 connections dripping
    # a header byte a second are all closed after `header_timeout_s`. The body has its own bound, in
    # `bot.adapters.common.read_body` (`body_timeout_s`), and a handler that does not read a body lets
    # aiohttp discard it for at most `lingering_time`.
    return {"keepalive_timeout": float(settings.header_timeout_s), "lingering_time": float(settings.body_timeout_s)}


def make_runner(app: web.Application, settings: Settings, **options: Any) -> web.AppRunner:
    """The runner every server of the app uses — `salesbot serve` and the tests — so the slow-client
    protection is part of the app, not of one caller. `options` are aiohttp's (access_log, …)."""
    return web.AppRunner(app, **{**runner_options(settings), **options})


def _platform_sink(sinks: dict[str, Any]) -> Any:
    async def sink(store: Any, msg: Any, replies: list[Any], now: Any) -> list[Any]:
        platform_sink = sinks.get(msg.platform)
        return await platform_sink(store, msg, replies, now) if platform_sink else replies

    return sink


def default_components(settings: Settings) -> list[Component]:
    """Platform adapters, outbox and scheduler enabled by the configuration."""
    from bot.outbox import outbox_component

    components: list[Component] = [outbox_component]
    if settings.wecom_enabled:
        from bot.adapters.wecom import wecom_component

        components.append(wecom_component)
    if settings.dingtalk_enabled:
        from bot.adapters.dingtalk import dingtalk_component

        components.append(dingtalk_component)
    from schedules.scheduler import scheduler_component

    components.append(scheduler_component)
    return components
