"""Shared set-up for the DingTalk adapter tests: settings pointing at a FakeDingTalk, a running app on
port 0, and `drain()`: one pass of the real outbox worker, awaited instead of waiting on its timer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.adapters.dingtalk import DELIVERER_KEY, DINGTALK_KEY, dingtalk_component
from bot.adapters.dingtalk_send import DingTalkDeliverer
from bot.app import build_app
from bot.outbox import OutboxWorker
from bot.settings import Settings
from storage.database import Database
from storage.models import OutboxMessage
from tests.db_helpers import count  # noqa: F401  (re-exported for the DingTalk tests)
from tests.fakes.dingtalk import FakeDingTalk
from tests.server_support import AppServer


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

    async def settle(self) -> None:
        """Wait until every acknowledged command has run (they run after the HTTP answer)."""
        await self.app[DINGTALK_KEY].idle()

    async def drain(self) -> list[OutboxMessage]:
        await self.settle()
        return await drain(self.db, self.deliverer)


@asynccontextmanager
async def running_bot(settings: Settings, db: Database, inbound_options: dict[str, Any] | None = None,
                      **stream_options: Any) -> AsyncIterator[RunningBot]:
    """`inbound_options={"workers": 0, "recover_every": None}` gives a bot that acknowledges and records
    but never processes — a process that dies right after answering."""
    app = build_app(settings, components=[lambda a: dingtalk_component(a, inbound_options, **stream_options)],
                    database=db)
    server = AppServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield RunningBot(app, server, http, db)
    finally:
        await server.close()


async def drain(db: Database, deliverer: DingTalkDeliverer) -> list[OutboxMessage]:
    """Run the outbox worker over everything due now; return the dingtalk rows it settled."""
    async with db.session() as session:
        before = {
            row.id
            for row in (
                await session.execute(
                    select(OutboxMessage).where(OutboxMessage.status == "pending", OutboxMessage.platform == "dingtalk")
                )
            ).scalars()
        }
    await OutboxWorker(db, {"dingtalk": deliverer}).run_once()
    async with db.session() as session:
        rows = (
            await session.execute(select(OutboxMessage).where(OutboxMessage.id.in_(before)).order_by(OutboxMessage.id))
        ).scalars()
        return list(rows)


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
