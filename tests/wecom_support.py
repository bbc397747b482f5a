"""Shared set-up for the WeCom adapter tests: the real app on a test server, talking to FakeWeCom."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.adapters.wecom import WECOM_KEY, wecom_component
from bot.app import build_app
from bot.settings import Settings
from storage.database import Database
from storage.models import Customer, InboundMessage, OutboxMessage
from tests.db_helpers import count
from tests.fakes.wecom import FakeWeCom
from tests.server_support import AppServer

AIBOT_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_KEY = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
WALL = 1_700_000_000.0

MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeCom]:
    async with FakeWeCom(
        corp_id="wwcorp",
        corp_secret="sec",
        aibot_token="T",
        aibot_aes_key=AIBOT_KEY,
        app_token="T2",
        app_aes_key=APP_KEY,
        agent_id=1000002,
        wall_clock=lambda: WALL,
    ) as wecom:
        yield wecom


def wecom_settings(fake: FakeWeCom, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        admins=("boss",),
        wecom_corp_id="wwcorp",
        wecom_aibot_token="T",
        wecom_aibot_aes_key=AIBOT_KEY,
        wecom_app_token="T2",
        wecom_app_aes_key=APP_KEY,
        wecom_app_secret="sec",
        wecom_agent_id=1000002,
        wecom_api_base=fake.base_url,
        # What a test answers inline must not go late because a busy CI host paused it past the real
        # 1.5 s window; tests of a late reply ask for reply_budget_ms=0.
        reply_budget_ms=10_000,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def make_client(db: Database, fake: FakeWeCom) -> AsyncIterator[MakeClient]:
    clients: list[TestClient] = []

    async def make(*, wall: float = WALL, settings: Settings | None = None, **overrides: Any) -> TestClient:
        app = build_app(
            settings or wecom_settings(fake, **overrides),
            components=[functools.partial(wecom_component, wall_clock=lambda: wall)],
            database=db,
        )
        client = TestClient(AppServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    return await make_client()


def adapter(client: TestClient) -> Any:
    return client.server.app[WECOM_KEY]


async def outbox_rows(db: Database) -> list[OutboxMessage]:
    async with db.transaction() as store:
        return list((await store.session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())


async def post_aibot(client: TestClient, callback: tuple[dict[str, str], bytes]) -> tuple[int, bytes]:
    query, body = callback
    async with client.post("/wecom/aibot", params=query, data=body) as resp:
        return resp.status, await resp.read()


async def post_app(client: TestClient, callback: tuple[dict[str, str], bytes]) -> tuple[int, bytes]:
    query, body = callback
    async with client.post("/wecom/app", params=query, data=body) as resp:
        return resp.status, await resp.read()


async def say(client: TestClient, fake: FakeWeCom, text: str, user: str, chat: str = "grpSales") -> str:
    """A rep @-mentions the bot in a group; returns the passive stream reply's markdown."""
    status, body = await post_aibot(client, fake.aibot_text_callback(text, user, chat))
    assert status == 200
    reply = fake.decrypt_aibot_passive_reply(body)
    assert reply["msgtype"] == "stream" and reply["stream"]["finish"] is True
    return reply["stream"]["content"]


__all__ = [
    "AIBOT_KEY", "APP_KEY", "WALL", "Customer", "InboundMessage", "OutboxMessage", "adapter", "client", "count",
    "fake", "make_client", "outbox_rows", "post_aibot", "post_app", "say", "wecom_settings",
]
