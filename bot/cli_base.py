"""What every `salesbot` sub-command module shares: the command signature and the prepared database."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from bot.assembly import open_database, prepare_database
from bot.settings import Settings
from storage.database import Database

Command = Callable[[argparse.Namespace, Settings], Awaitable[int]]


class DryRun(Exception):
    """Leaves a unit of work without committing (`--dry-run`), carrying what to print."""

    def __init__(self, report: str) -> None:
        super().__init__(report)
        self.report = report


@asynccontextmanager
async def prepared_database(settings: Settings) -> AsyncIterator[Database]:
    """The configured database, migrated (SQLite) or checked (PostgreSQL) and re-keyed, closed afterwards."""
    db = open_database(settings)
    try:
        await prepare_database(db)
        yield db
    finally:
        await db.close()
