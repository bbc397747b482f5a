"""Schema migrations: apply them, and tell whether a database is up to date.

On the SQLite default the bot migrates by itself on start; on PostgreSQL, where several replicas may
share one database and schema changes want an operator's eye, it refuses to start on an unmigrated
database and names the command to run.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class SchemaNotReady(RuntimeError):
    """The database is not at the newest migration; the message tells the operator what to run."""


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    def _current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _run_command(engine, lambda cfg: command.upgrade(cfg, revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _run_command(engine, lambda cfg: command.downgrade(cfg, revision))


async def _run_command(engine: AsyncEngine, run: object) -> None:
    def _with_connection(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        run(cfg)  # type: ignore[operator]

    async with engine.begin() as conn:
        await conn.run_sync(_with_connection)


async def ensure_schema(engine: AsyncEngine, *, auto_migrate: bool) -> None:
    """Migrate (SQLite default) or check (PostgreSQL) that the schema is at head."""
    if auto_migrate:
        await upgrade(engine)
        return
    current = await current_revision(engine)
    if current != head_revision():
        state = "尚未初始化" if current is None else f"版本较旧（{current}）"
        raise SchemaNotReady(
            f"数据库{state}，请先运行：salesbot db upgrade --db <数据库地址>"
            "（或设置 SALESBOT_DATABASE_URL 后运行 salesbot db upgrade）"
        )
