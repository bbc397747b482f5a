"""What every `salesbot` sub-command module shares: the command signature and the prepared database."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from bot.assembly import open_database, prepare_database
from bot.settings import Settings
from storage.database import Database

Command = Callable[[argparse.Namespace, Settings], Awaitable[int]]


async def find_org(store: Any, args: argparse.Namespace, now: datetime, *, create: bool) -> Any:
    """The organisation named by --platform/--org, or None after printing why.

    On the console an import may create it (a console organisation is only a name); a WeCom or DingTalk
    organisation appears when someone there first talks to the bot.
    """
    org = await store.get_org(args.platform, args.org)
    if org is None and create and args.platform == "console":
        org = await store.ensure_org(args.platform, args.org, now)
    if org is None:
        print(f"找不到组织「{args.org}」（平台 {args.platform}）。请检查 --org 和 --platform；"
              "企业微信/钉钉的组织在有人给机器人发过消息后才会出现。", file=sys.stderr)
    return org


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
