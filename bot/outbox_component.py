"""The outbox worker as an app component: one per bot process, woken by every commit that enqueued."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.app_keys import DATABASE_KEY, DELIVERERS_KEY, HTTP_SESSION_KEY, METRICS_KEY, SETTINGS_KEY
from bot.delivery import Deliverer, DeliverersByKind
from bot.outbox import OutboxWorker

OUTBOX_WORKER_KEY = web.AppKey("outbox_worker", OutboxWorker)


def build_deliverers(app: web.Application) -> dict[str, Deliverer]:
    """The deliverers this process can use, by platform.

    Platform adapters register theirs in `app[DELIVERERS_KEY]` when they start (possibly after the
    worker); the worker keeps this very dict and looks deliverers up at send time. Without a WeCom
    adapter, group webhooks (set with `salesbot team set-webhook`) can still be sent.
    """
    from bot.adapters.wecom_webhook import WeComWebhookDeliverer
    deliverers: dict[str, Deliverer] = app[DELIVERERS_KEY]
    if "console" not in deliverers:
        from bot.adapters.console import ConsoleDeliverer

        deliverers["console"] = ConsoleDeliverer()
    if "wecom" not in deliverers:
        session = app[HTTP_SESSION_KEY]
        webhook = WeComWebhookDeliverer(session, api_base=app[SETTINGS_KEY].wecom_api_base)
        deliverers["wecom"] = DeliverersByKind("wecom", {"webhook": webhook})
    return deliverers


def outbox_component(app: web.Application) -> None:
    """Run an `OutboxWorker` for the app's lifetime, woken by every commit that enqueued messages."""
    async def outbox_ctx(app: web.Application) -> Any:
        db = app[DATABASE_KEY]
        worker = OutboxWorker(db, build_deliverers(app), admin_ids=tuple(app[SETTINGS_KEY].admins),
                              metrics=app.get(METRICS_KEY))
        db.on_commit(worker.on_commit)
        app[OUTBOX_WORKER_KEY] = worker
        await worker.start()
        yield
        await worker.stop()

    app.cleanup_ctx.append(outbox_ctx)
