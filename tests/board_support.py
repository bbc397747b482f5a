"""The web board under test: the app with only the board component, on 127.0.0.1 port 0, the test's
database and clock, and the console harness to make links as a lead would (`看板 链接`)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from bot.app import build_app
from bot.settings import Settings
from bot.web.routes import CLOCK_KEY, board_component
from storage.board_links import BoardConfig
from storage.database import Database
from tests.server_support import AppServer

LINK = re.compile(r"(http://127\.0\.0\.1:\d+/board/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)")


@dataclass
class Board:
    url: str
    http: aiohttp.ClientSession

    async def get(self, url: str) -> tuple[int, str, dict[str, str]]:
        async with self.http.get(url, allow_redirects=False) as resp:
            return resp.status, await resp.text(), dict(resp.headers)


def link_in(answers: list[str]) -> str:
    """The board URL in what the bot answered (the private message to the requester)."""
    for answer in answers:
        found = LINK.search(answer)
        if found:
            return found.group(1)
    raise AssertionError(f"no board link in {answers!r}")


@pytest.fixture
async def board(db: Database, clock) -> AsyncIterator[Board]:  # type: ignore[no-untyped-def]
    # The board is served by the same deployment as the chat: the same SALESBOT_ADMINS (tests/conftest's bot).
    settings = Settings(database_url="sqlite+aiosqlite://", admins=db.admin_entries)
    app = build_app(settings, components=[board_component], database=db)
    app[CLOCK_KEY] = clock
    server = AppServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    url = f"http://127.0.0.1:{server.port}"
    db.board = BoardConfig(public_url=url)
    try:
        async with aiohttp.ClientSession() as http:
            yield Board(url, http)
    finally:
        await server.close()
