"""Shared set-up for the DingTalk adapter tests: settings pointing at a FakeDingTalk, a running app on
port 0, and a STAND-IN outbox drain.

`drain()` is a test-only stand-in for bot/outbox.py (branch `outbox`), which had not merged when the
DingTalk adapter was written: it hands every pending dingtalk outbox row, oldest first, to
`DingTalkDeliverer.deliver` and marks it sent or failed. Replace it with the real worker after merge.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from bot.adapters.dingtalk import DELIVERER_KEY, DINGTALK_KEY, DingTalkDeliverer, dingtalk_component
from bot.app import build_app
from bot.delivery import DeliveryError, OutgoingMessage
from bot.settings import Settings
from storage.database import Database
from storage.models import OutboxMessage
from tests.fakes.dingtalk import FakeDingTalk


def dingtalk_settings(ding: FakeDingTalk, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        admins=("boss",),
        dingtalk_app_key=ding.app_key,
        dingtalk_app_secret=ding.app_secret,
        dingtalk_agent_id=ding.agent_id,
        dingtalk_event_token=ding.event_token,
        dingtalk_event_aes_key=ding.event_aes_key,
        dingtalk_oapi_base=ding.oapi_base,
        dingtalk_api_base=ding.api_base,
    )
    values.update(overrides)
    return Settings(**values)


class RunningBot:
    def __init__(self, app: web.Application, server: TestServer, http: aiohttp.ClientSession, db: Database) -> None:
        self.app, self.server, self.http, self.db = app, server, http, db

    @property
    def deliverer(self) -> DingTalkDeliverer:
        return self.app[DELIVERER_KEY]

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def post_robot(self, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        async with self.http.post(self.url("/dingtalk/robot"), headers=headers, data=body) as resp:
            return resp.status, await resp.text()

    async def drain(self) -> list[OutboxMessage]:
        return await drain(self.db, self.deliverer)


@asynccontextmanager
async def running_bot(settings: Settings, db: Database, **stream_options: Any) -> AsyncIterator[RunningBot]:
    app = build_app(settings, components=[lambda a: dingtalk_component(a, **stream_options)], database=db)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield RunningBot(app, server, http, db)
    finally:
        await server.close()


async def drain(db: Database, deliverer: DingTalkDeliverer) -> list[OutboxMessage]:
    """STAND-IN for the outbox worker: deliver pending dingtalk rows in id order; returns them."""
    async with db.session() as session:
        rows = list(
            (
                await session.execute(
                    select(OutboxMessage)
                    .where(OutboxMessage.status == "pending", OutboxMessage.platform == "dingtalk")
                    .order_by(OutboxMessage.id)
                )
            ).scalars()
        )
    for row in rows:  # deliver outside any transaction, as the worker does
        try:
            await deliverer.deliver(row.destination, OutgoingMessage.from_json(row.body))
            row.status, row.sent_at = "sent", datetime.now(timezone.utc)
        except DeliveryError as err:
            row.status, row.last_error = "failed", err.reason
        row.attempts += 1
        async with db.session() as session, session.begin():
            await session.merge(row)
    return rows


async def count(db: Database, model: type, *where: Any) -> int:
    async with db.session() as session:
        return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def outbox_rows(db: Database) -> list[OutboxMessage]:
    async with db.session() as session:
        return list((await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())


def text_of(rec: Any) -> str:
    """Markdown text of a recorded robot message (sessionWebhook/custom robot body or msgParam)."""
    if rec.msg_param is not None:
        return str(rec.msg_param["text"])
    body = rec.json
    if body.get("msgtype") == "markdown":
        return str(body["markdown"]["text"])
    if "msg" in body:
        return str(body["msg"]["markdown"]["text"])
    return str(body["text"]["content"])


__all__ = ["DINGTALK_KEY", "RunningBot", "count", "dingtalk_settings", "drain", "outbox_rows", "running_bot", "text_of"]
