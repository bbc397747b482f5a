"""The aiohttp application: one process serving every platform, the scheduler and the outbox.

Nothing starts at import time. Resources (database engine, HTTP client session, workers) open and
close in aiohttp's cleanup context, so tests can build and tear down as many apps as they like.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.web_log import AccessLogger

from bot.adapters.common import long_connection_session, platform_session
from bot.app_keys import (
    DATABASE_KEY,
    DELIVERERS_KEY,
    HTTP_SESSION_KEY,
    LONG_SESSION_KEY,
    METRICS_KEY,
    REPLY_SINKS_KEY,
    ROUTER_KEY,
    SETTINGS_KEY,
)
from bot.assembly import build_router, open_database, prepare_database
from bot.charts_route import add_chart_route
from bot.logs import log_context
from bot.metrics import CONTENT_TYPE, Metrics, callback_outcome, end_callback, start_callback
from bot.settings import Settings
from storage.board_links import mask_token
from storage.database import Database
from storage.health import backlog

log = logging.getLogger("salesbot.app")

# A component adds routes and lifecycle to the app (a platform adapter, the outbox, the scheduler).
Component = Callable[[web.Application], None]

# The first segment of a platform callback's route: `/dingtalk/robot`, `/wecom/aibot/{corp_id}` …
CALLBACK_PLATFORMS = frozenset({"dingtalk", "wecom"})
# `/readyz`: a due outbox row that no worker has taken for this long means delivery is stuck; a check
# that takes longer than CHECK_TIMEOUT_S counts as failed (a load balancer must get its answer).
OUTBOX_STUCK_AFTER = timedelta(minutes=5)
CHECK_TIMEOUT_S = 5.0


async def healthz(request: web.Request) -> web.Response:
    db = request.app[DATABASE_KEY]
    ok = await db.ping()
    body = {"status": "ok" if ok else "degraded", "database": "ok" if ok else "unreachable"}
    return web.json_response(body, status=200 if ok else 503)


@web.middleware
async def observe_callbacks(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """Count every platform callback by its outcome, and give the logs of its handling its platform."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else ""
    platform = route.split("/", 2)[1] if route.count("/") >= 1 else ""
    if platform not in CALLBACK_PLATFORMS:
        return await handler(request)
    note, token = start_callback()
    status = 500
    try:
        with log_context(platform=platform):
            response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    except web.HTTPException as err:
        status = err.status
        raise
    finally:
        end_callback(token)
        request.app[METRICS_KEY].callback(platform, route, callback_outcome(status, note))


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus text format; the backlog gauges are read from the database now (bot.metrics)."""
    metrics = request.app[METRICS_KEY]
    try:
        found = await asyncio.wait_for(backlog(request.app[DATABASE_KEY]), CHECK_TIMEOUT_S)
    except Exception as err:
        log.warning("metrics: backlog not read (%s); the gauges keep their last values", type(err).__name__)
    else:
        metrics.set_backlog(found.outbox, found.oldest_inbound, datetime.now(UTC))
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})


async def readyz(request: web.Request) -> web.Response:
    """200 when this process can do its work: the database answers, the long connections configured
    are up, and the outbox is not stuck; 503 with the reasons otherwise. `/healthz` (is the process
    alive) stays as it was."""
    app = request.app
    checks: dict[str, str] = {}
    reasons: list[str] = []
    db = app[DATABASE_KEY]
    try:
        database_ok = await asyncio.wait_for(db.ping(), CHECK_TIMEOUT_S)
    except TimeoutError:
        database_ok = False
    checks["database"] = "ok" if database_ok else "unreachable"
    if not database_ok:
        reasons.append("database unreachable")
    for name, up in _long_connections(app):
        checks[name] = "connected" if up else "disconnected"
        if not up:
            reasons.append(f"{name} not connected")
    if database_ok:
        checks["outbox"] = await _outbox_check(db)
        if checks["outbox"] != "ok":
            reasons.append(f"outbox {checks['outbox']}")
    body: dict[str, Any] = {"status": "not ready" if reasons else "ready", "checks": checks}
    if reasons:
        body["reasons"] = reasons
    return web.json_response(body, status=503 if reasons else 200)


async def _outbox_check(db: Database) -> str:
    """"ok", or why not: the earliest due destination head (storage.outbox_queue.next_due) is long overdue.

    Heads only: rows waiting behind a head that backs off, or for a rate limit, are not stuck.
    """
    try:
        due = await asyncio.wait_for(db.outbox.next_due(), CHECK_TIMEOUT_S)
    except Exception as err:
        return f"unreadable ({type(err).__name__})"
    if due is not None and datetime.now(UTC) - due > OUTBOX_STUCK_AFTER:
        minutes = (datetime.now(UTC) - due).total_seconds() / 60
        return f"stuck: a message due {minutes:.0f} min ago is not sent"
    return "ok"


def _long_connections(app: web.Application) -> list[tuple[str, bool]]:
    """(name, connected) of every long connection this app runs: DingTalk Stream, WeCom AI bot (per corp)."""
    settings = app[SETTINGS_KEY]
    found: list[tuple[str, bool]] = []
    if settings.dingtalk_enabled and settings.dingtalk_mode == "stream":
        from bot.adapters.dingtalk import STREAM_KEY

        client = app.get(STREAM_KEY)
        if client is not None:
            found.append(("dingtalk_stream", bool(client.connected.is_set())))  # type: ignore[attr-defined]
    if settings.wecom_enabled:
        from bot.adapters.wecom import WECOM_KEY

        adapter = app.get(WECOM_KEY)
        if adapter is not None:
            connections = {id(c): c for c in (adapter.ws, *adapter.ws_by_corp.values()) if c is not None}
            for connection in connections.values():
                corp = getattr(connection.corp, "corp_id", None) or "default"
                found.append((f"wecom_long_connection:{corp}", bool(connection.connected)))
    return found


def build_app(
    settings: Settings, *, components: list[Component] | None = None, database: Database | None = None
) -> web.Application:
    app = web.Application(client_max_size=64 * 1024, middlewares=[observe_callbacks])
    app[SETTINGS_KEY] = settings
    # Its own registry per app (bot.metrics); prometheus-client is imported here, not by `salesbot chat`.
    app[METRICS_KEY] = Metrics()

    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        db = database or open_database(settings)
        db.admin_entries = tuple(settings.admins)  # a database handed in (tests) follows the settings too
        await prepare_database(db)
        app[DATABASE_KEY] = db
        app[ROUTER_KEY] = build_router(
            db, reply_sink=_platform_sink(app[REPLY_SINKS_KEY]), metrics=app[METRICS_KEY]
        )
        yield
        if database is None:
            await db.close()

    app[REPLY_SINKS_KEY] = {}
    app[DELIVERERS_KEY] = {}

    async def http_session_ctx(app: web.Application) -> AsyncIterator[None]:
        # Every platform call of this process uses these sessions; neither follows a redirect.
        session = platform_session(timeout=aiohttp.ClientTimeout(total=10))
        long_session = long_connection_session(timeout=aiohttp.ClientTimeout(total=10))
        app[HTTP_SESSION_KEY] = session
        app[LONG_SESSION_KEY] = long_session
        yield
        await session.close()
        await long_session.close()

    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(http_session_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    add_chart_route(app)
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
    protection is part of the app, not of one caller. `options` are aiohttp's (access_log, …). An access
    log, when one is on, never shows a board token."""
    return web.AppRunner(app, **{**runner_options(settings), "access_log_class": MaskingAccessLogger, **options})


class MaskingAccessLogger(AccessLogger):
    """aiohttp's access logger with board tokens masked in the request line (`/board/***/customers`)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.path.startswith("/board/"):
            request = request.clone(rel_url=mask_token(request.rel_url.path))
        super().log(request, response, time)


def _platform_sink(sinks: dict[str, Any]) -> Any:
    async def sink(store: Any, msg: Any, replies: list[Any], now: Any) -> list[Any]:
        platform_sink = sinks.get(msg.platform)
        return await platform_sink(store, msg, replies, now) if platform_sink else replies

    return sink


def default_components(settings: Settings) -> list[Component]:
    """Platform adapters, outbox and scheduler enabled by the configuration."""
    from bot.outbox_component import outbox_component

    components: list[Component] = [outbox_component]
    if settings.wecom_enabled:
        from bot.adapters.wecom import wecom_component

        components.append(wecom_component)
    if settings.dingtalk_enabled:
        from bot.adapters.dingtalk import dingtalk_component

        components.append(dingtalk_component)
    from schedules.scheduler import scheduler_component

    components.append(scheduler_component)
    from bot.web.routes import board_component

    components.append(board_component)
    return components
