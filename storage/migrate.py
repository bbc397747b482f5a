"""Schema migrations: apply them, and tell whether a database is up to date.

On the SQLite default the bot migrates by itself on start; on PostgreSQL, where several replicas may
share one database and schema changes want an operator's eye, it refuses to start on an unmigrated
database and names the command to run.

Alembic (with Mako and every SQLAlchemy dialect its DDL layer registers) costs about 80 ms and 10 MB
to import, and a start-up on a database that is already at head needs none of it: `ensure_schema`
reads `alembic_version` with plain SQL and compares it with `HEAD_REVISION`, a constant that
tests/test_migrations.py checks against Alembic's own idea of the head. Alembic is imported only
when something is to be migrated or inspected.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# The newest revision in migrations/versions/. A new migration changes it (the test says so).
HEAD_REVISION = "0023_queue_autovacuum"
# Alembic's own bookkeeping table, as `alembic upgrade` creates it.
_VERSION_TABLE_DDL = (
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
)


class SchemaNotReady(RuntimeError):
    """The database is not at the newest migration; the message tells the operator what to run."""


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def head_revision() -> str:
    """The head as Alembic computes it from the migration scripts (imports Alembic)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def _current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def _recorded_revision(engine: AsyncEngine) -> str | None:
    """What `alembic_version` says, read without Alembic; None when the table is missing or empty."""
    async with engine.connect() as conn:
        try:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        except DBAPIError:  # no such table: a new database
            return None
        finally:
            await conn.rollback()
    return rows[0] if len(rows) == 1 else None


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    from alembic import command

    await _run_command(engine, lambda cfg: command.upgrade(cfg, revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    from alembic import command

    await _run_command(engine, lambda cfg: command.downgrade(cfg, revision))


async def _run_command(engine: AsyncEngine, run: Callable[[Config], None]) -> None:
    def _with_connection(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        run(cfg)

    async with engine.begin() as conn:
        await conn.run_sync(_with_connection)


async def create_at_head(engine: AsyncEngine) -> bool:
    """A brand-new SQLite database gets the head schema in one step: the models' DDL and Alembic's version row.

    The first `salesbot chat` on a new SQLite file would otherwise import Alembic and replay every
    migration (~0.15 s of a start-up that should answer in half a second). tests/test_migrations.py
    checks that the result — tables, columns, indexes, constraints and rows — is what the migrations
    give, so a migration that seeds rows shows up there. Returns False, creating nothing, when the
    database has any table already (another process got there first, or an old schema to migrate).
    """
    from storage.models import Base

    async with engine.begin() as conn:
        tables = (await conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'table'"))).scalar_one()
        if tables:
            return False
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(text(_VERSION_TABLE_DDL))
        await conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:head)"), {"head": HEAD_REVISION})
    return True


async def ensure_schema(engine: AsyncEngine, *, auto_migrate: bool) -> None:
    """Migrate (SQLite default) or check (PostgreSQL) that the schema is at head.

    At head — the usual start — this is one SELECT and no Alembic import.
    """
    recorded = await _recorded_revision(engine)
    if recorded == HEAD_REVISION:
        return
    if auto_migrate:
        if recorded is None and engine.dialect.name == "sqlite" and await create_at_head(engine):
            return
        await upgrade(engine)
        return
    current = await current_revision(engine)
    if current != head_revision():
        state = "尚未初始化" if current is None else f"版本较旧（{current}）"
        raise SchemaNotReady(
            f"数据库{state}，请先运行：salesbot db upgrade --db <数据库地址>"
            "（或设置 SALESBOT_DATABASE_URL 后运行 salesbot db upgrade）"
        )
