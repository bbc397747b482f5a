"""Migrations: every revision goes up, down and up again, and the models match the migrated schema."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

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


async def _schema_and_rows(db: Database) -> dict[str, object]:
    """Everything a database holds that a migration decides: tables, columns, keys, indexes, rows."""
    from sqlalchemy import inspect, text

    def read(conn):  # noqa: ANN001, ANN202
        inspector = inspect(conn)
        found: dict[str, object] = {}
        for table in sorted(inspector.get_table_names()):
            columns = [(c["name"], str(c["type"]), c["nullable"], c.get("default"))
                       for c in inspector.get_columns(table)]
            found[table] = {
                "columns": sorted(columns),
                "pk": inspector.get_pk_constraint(table)["constrained_columns"],
                "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                              for f in inspector.get_foreign_keys(table)),
                "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                  for i in inspector.get_indexes(table)),
                "uniques": sorted((u["name"], tuple(u["column_names"]))
                                  for u in inspector.get_unique_constraints(table)),
                "rows": conn.execute(text(f'SELECT * FROM "{table}"')).all(),
            }
        return found

    async with db.engine.connect() as conn:
        return await conn.run_sync(read)


async def test_a_new_sqlite_database_starts_at_head_as_if_every_migration_had_run(tmp_path) -> None:  # noqa: ANN001
    migrated = Database.from_url(f"sqlite:///{tmp_path / 'migrated.db'}")
    created = Database.from_url(f"sqlite:///{tmp_path / 'created.db'}")
    try:
        await migrate.upgrade(migrated.engine)
        await created.prepare()  # a new file: the one-step path, no Alembic
        assert await migrate.current_revision(created.engine) == migrate.HEAD_REVISION
        assert await _schema_and_rows(created) == await _schema_and_rows(migrated)
        # Alembic manages it from there like any other: down to nothing and up again.
        await migrate.downgrade(created.engine, "base")
        await migrate.upgrade(created.engine)
        assert await _schema_and_rows(created) == await _schema_and_rows(migrated)
    finally:
        await migrated.close()
        await created.close()


async def _autovacuum_options(db: Database, table: str) -> set[str]:
    async with db.engine.connect() as conn:
        options = (await conn.execute(text("SELECT reloptions FROM pg_class WHERE oid = to_regclass(:t)"),
                                      {"t": table})).scalar_one()
    return {o for o in options or () if o.startswith("autovacuum")}


async def test_the_queue_tables_are_vacuumed_after_a_fixed_number_of_changes_on_postgresql(db) -> None:
    """Not after a fifth of a table that keeps weeks of history (migration 0023)."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL's autovacuum settings; SQLite has none")
    expected = {"autovacuum_vacuum_scale_factor=0", "autovacuum_vacuum_threshold=2000",
                "autovacuum_analyze_scale_factor=0", "autovacuum_analyze_threshold=1000"}
    for table in ("outbox", "inbound_messages"):
        assert await _autovacuum_options(db, table) == expected
    await migrate.downgrade(db.engine, "0022_redundant_org_indexes")
    assert await _autovacuum_options(db, "outbox") == set()
    await migrate.upgrade(db.engine)
    assert await _autovacuum_options(db, "inbound_messages") == expected
