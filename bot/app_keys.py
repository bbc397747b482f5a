"""The application's typed keys: what the app object holds for its components.

Apart from `bot.app` so that a component (an adapter, the outbox, the scheduler) can name the database or
the HTTP session it needs without importing the assembly point that lists every component.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from bot.metrics import Metrics
from bot.router import Router
from bot.settings import Settings
from storage.database import Database

SETTINGS_KEY = web.AppKey("settings", Settings)
DATABASE_KEY = web.AppKey("database", Database)
ROUTER_KEY = web.AppKey("router", Router)
# Per-platform reply sinks (called inside the command's transaction); components register theirs.
REPLY_SINKS_KEY = web.AppKey("reply_sinks", dict)
# Deliverers by platform; adapters register theirs when they start, the outbox worker looks them up
# at send time.
DELIVERERS_KEY = web.AppKey("deliverers", dict)
# One client session per process: connection pooling for every outbound call (outbox, token refresh).
HTTP_SESSION_KEY = web.AppKey("http_session", aiohttp.ClientSession)
# The session long connections (DingTalk Stream, WeCom's websocket) open on: it refuses redirects itself.
LONG_SESSION_KEY = web.AppKey("long_connection_session", aiohttp.ClientSession)
# The app's metrics (bot.metrics): the middleware, the router, the outbox worker and the scheduler count there.
METRICS_KEY = web.AppKey("metrics", Metrics)
