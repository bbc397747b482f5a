"""What a salesbot router is made of — every area's commands and `设置` rows — and the process's database.

Apart from `bot.app` (the aiohttp application) so that `salesbot chat` builds the same router as the
service without importing an HTTP server: the console starts faster and lighter, and what it answers
is what the platforms answer.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from bot.router import Router
from bot.settings import Settings
from handlers import all_commands
from handlers.commands import SettingsTable, settings_table
from handlers.names import NAME_KEY_VERSION, normalise_company_name
from storage.board_links import BoardConfig
from storage.database import Database

log = logging.getLogger("salesbot")


def open_database(settings: Settings) -> Database:
    """The process's database, with new organisations starting in the configured time zone."""
    db = Database.from_url(settings.database_url)
    db.default_timezone = settings.timezone
    db.name_key_version = NAME_KEY_VERSION
    db.admin_entries = tuple(settings.admins)
    db.board = BoardConfig(public_url=settings.public_url, secret=settings.board_secret)
    from bot.charts import announce_font, find_cjk_font

    db.chart_font = find_cjk_font(settings.chart_font_dir)
    announce_font(db.chart_font)
    return db


async def prepare_database(db: Database) -> None:
    """The schema at head (migrated on SQLite, checked on PostgreSQL), then the customers' 撞单 keys
    brought to the running rules: what `serve`, `chat` and every database command start with."""
    await db.prepare()
    await rekey_customer_names(db)


async def rekey_customer_names(db: Database, now: datetime | None = None) -> int:
    """Re-key the customers of every organisation whose keys were made by another NAME_KEY_VERSION.

    One query when every organisation is current (the usual start); else one transaction per
    organisation, which records the version first so that a replica starting alongside skips it.
    Returns how many customers changed.
    """
    async with db.transaction() as store:
        stale = await store.stale_name_key_orgs(NAME_KEY_VERSION)
    changed = 0
    for org_id in stale:
        async with db.transaction() as store:
            if await store.take_name_key_version(org_id, NAME_KEY_VERSION):
                changed += await store.rekey_customer_names(normalise_company_name, now or datetime.now(UTC))
    if stale:
        log.info("客户名称键已更新到第 %d 版：%d 个组织，%d 个客户", NAME_KEY_VERSION, len(stale), changed)
    return changed


def all_settings() -> SettingsTable:
    """Every `设置` row, in the order `设置` lists them: the team's own rows, each platform's group push,
    the schedules, the points, the credit split.

    Both platforms' rows are offered whatever is configured (the console too): a team may be set up
    before its platform is switched on, and the rows are plain parsing with no platform client behind them.
    """
    from bot.adapters import dingtalk_settings, wecom_settings
    from handlers import admin, board_link, credit_split, forecast, points, standup

    return settings_table(
        admin.settings, wecom_settings.settings, dingtalk_settings.settings, standup.settings, points.settings,
        credit_split.settings, forecast.settings, board_link.settings,
    )


def build_router(db: Database, **kwargs: Any) -> Router:
    return Router(db, all_commands(), settings_table=all_settings(), **kwargs)
