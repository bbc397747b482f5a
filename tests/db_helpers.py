"""Small database reads shared by tests of every platform."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text

from storage.database import Database


async def count(db: Database, model: type, *where: Any) -> int:
    """Rows of `model` (matching `where`), read in a session of their own."""
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def insert_rows(db: Database, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Rows written as they are (ids included, as a dump would), table by table, in plain SQL — for
    schemas older than the models; on PostgreSQL the id sequences are moved past them afterwards."""
    async with db.engine.begin() as conn:
        for table, values in rows.items():
            columns = list(values[0])
            placeholders = ", ".join(f":{c}" for c in columns)
            await conn.execute(text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"), values)
            if conn.dialect.name == "postgresql" and "id" in columns:
                sequence = f"pg_get_serial_sequence('{table}', 'id')"
                await conn.execute(text(f"SELECT setval({sequence}, (SELECT MAX(id) FROM {table}))"))
