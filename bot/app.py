"""The aiohttp application: one process serving every platform, the scheduler and the outbox.

Nothing starts at import time. Resources (database engine, HTTP client session, workers) open and
close in aiohttp's cleanup context, so tests can build and tear down as many apps as they like.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from bot.router import Router
from bot.settings import Settings
from handlers import all_commands
from storage.database import Database

log = logging.getLogger("salesbot.app")

SETTINGS_KEY = web.AppKey("settings", Settings)
DATABASE_KEY = web.AppKey("database", Database)
ROUTER_KEY = web.AppKey("router", Router)

# A component adds routes and lifecycle to the app (a platform adapter, the outbox, the scheduler).
Component = Callable[[web.Application], None]


def build_router(db: Database, settings: Settings, **kwargs: Any) -> Router:
    return Router(db, all_commands(), admin_ids=settings.admins, **kwargs)


async def healthz(request: web.Request) -> web.Response:
    db = request.app[DATABASE_KEY]
    ok = await db.ping()
    return web.json_response({"status": "ok" if ok else "degraded", "database": "ok" if ok else "unreachable"}, status=200 if ok else 503)


def build_app(settings: Settings, *, components: list[Component] | None = None, database: Database | None = None) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[SETTINGS_KEY] = settings

    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        db = database or Database.from_url(settings.database_url)
        await db.prepare()
        app[DATABASE_KEY] = db
        app[ROUTER_KEY] = build_router(db, settings)
        yield
        if database is None:
            await db.close()

    app.cleanup_ctx.append(database_ctx)
    app.router.add_get("/healthz", healthz)
    for component in components or default_components(settings):
        component(app)
    return app


def default_components(settings: Settings) -> list[Component]:
    """Platform adapters, outbox and scheduler enabled by the configuration."""
    from schedules.scheduler import scheduler_component

    return [scheduler_component]
