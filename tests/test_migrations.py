"""Migrations: every revision goes up, down and up again, and the models match the migrated schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage import migrate
from storage.database import Database
from storage.models import Base


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


async def _empty(db: Database) -> None:
    """Start from an empty schema (the fixture hands out a migrated database)."""
    await migrate.downgrade(db.engine, "base")


async def test_every_revision_goes_up_down_and_up_again(db) -> None:
    await _empty(db)
    previous = "base"
    for revision in _revisions():
        await migrate.upgrade(db.engine, revision)
        await migrate.downgrade(db.engine, previous)
        await migrate.upgrade(db.engine, revision)
        assert await migrate.current_revision(db.engine) == revision
        previous = revision


async def test_models_match_the_migrated_schema(db) -> None:
    def diff(conn):  # noqa: ANN001, ANN202
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)

    async with db.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []
