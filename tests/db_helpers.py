"""Small database reads shared by tests of every platform."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from storage.database import Database


async def count(db: Database, model: type, *where: Any) -> int:
    """Rows of `model` (matching `where`), read in a session of their own."""
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())
