"""Shared fixtures: a real database (SQLite file, and PostgreSQL when SALESBOT_TEST_PG_URL is set),
a controllable clock, and a console harness that drives the bot like a user would."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text

from bot.adapters.console import ConsoleChat
from bot.assembly import all_settings
from bot.logs import remove_logging
from bot.router import Router
from handlers import all_commands
from storage import migrate
from storage.database import Database
from storage.engine import create_engine
from storage.models import Base

# The WeCom adapter tests' fixtures (`fake`, `make_client`, `client`) live with their helpers in
# tests/wecom_support.py; registering it as a plugin gives every test module those fixtures without importing
# them (an imported fixture is an unused name that the test's parameter of the same name then shadows).
pytest_plugins = ["tests.wecom_support", "tests.board_support"]

PG_URL = os.environ.get("SALESBOT_TEST_PG_URL")
DATABASES = ["sqlite", "postgresql"]


@dataclass
class FakeClock:
    """The bot's notion of now; tests move it instead of sleeping."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 27, 2, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now

    def set_local(self, text_: str, tz: str = "Asia/Shanghai") -> datetime:
        from zoneinfo import ZoneInfo

        self.now = datetime.fromisoformat(text_).replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)
        return self.now


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """A test that runs the CLI in-process installs the process's log handler on the root logger, bound
    to that test's captured stderr; later tests would write their records to the closed stream."""
    level = logging.getLogger().level
    yield
    remove_logging()
    logging.getLogger().setLevel(level)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"

    async def build() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await migrate.upgrade(engine)
        await engine.dispose()

    asyncio.run(build())
    return path


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str | None]:
    """One private schema per test run, so parallel runs on one server never see each other."""
    if not PG_URL:
        yield None
        return
    schema = f"t_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def setup() -> None:
        admin = create_engine(PG_URL)
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await admin.dispose()
        engine = pg_engine(schema)
        await migrate.upgrade(engine)
        await engine.dispose()

    async def teardown() -> None:
        admin = create_engine(PG_URL)
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()

    asyncio.run(setup())
    yield schema
    asyncio.run(teardown())


def pg_engine(schema: str, **kwargs: object):  # type: ignore[no-untyped-def]
    assert PG_URL
    return create_engine(PG_URL, connect_args={"server_settings": {"search_path": schema}}, **kwargs)


async def _truncate_pg(db: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=DATABASES)
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, pg_schema: str | None
) -> AsyncIterator[Database]:
    """A migrated, empty database: a SQLite file, or PostgreSQL when SALESBOT_TEST_PG_URL is set."""
    if request.param == "sqlite":
        path = tmp_path / "salesbot.db"
        shutil.copy(sqlite_template, path)
        database = Database.from_url(f"sqlite+aiosqlite:///{path}")
        database.url = f"sqlite+aiosqlite:///{path}"  # type: ignore[attr-defined]
    else:
        if not pg_schema:
            pytest.skip("PostgreSQL tests need SALESBOT_TEST_PG_URL")
        database = Database(pg_engine(pg_schema, pool_size=20))  # 30 connections at most: CI shares the server
        await _truncate_pg(database)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Harness(ConsoleChat):
    """`await bot.say("认领 华为", user="张三")` returns what the bot answered, as the console shows it."""

    async def join(self, *names: str) -> None:
        """People speak in the group before anyone can @ them: on the console, speaking makes a member."""
        for name in names:
            await self.say("帮助", user=name)


@pytest.fixture
def make_bot(db: Database, clock: FakeClock):  # type: ignore[no-untyped-def]
    def make(team: str = "销售一组", admins: tuple[str, ...] = ("老板",), org: str = "console") -> Harness:
        db.admin_entries = admins  # SALESBOT_ADMINS, as bot.assembly configures it
        router = Router(db, all_commands(), settings_table=all_settings(), clock=clock)
        return Harness(router=router, team=team, user="张三", org=org)

    return make


@pytest.fixture
def bot(make_bot) -> Harness:  # type: ignore[no-untyped-def]
    return make_bot()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session of the test's own, for deliverers and for talking to the fakes directly."""
    async with aiohttp.ClientSession() as session:
        yield session
