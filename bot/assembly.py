"""What a salesbot router is made of — every area's commands and `设置` rows — and the process's database.

Apart from `bot.app` (the aiohttp application) so that `salesbot chat` builds the same router as the
service without importing an HTTP server: the console starts faster and lighter, and what it answers
is what the platforms answer.
"""

from __future__ import annotations

from typing import Any

from bot.router import Router
from bot.settings import Settings
from handlers import all_commands
from handlers.commands import SettingsTable, settings_table
from storage.database import Database


def open_database(settings: Settings) -> Database:
    """The process's database, with new organisations starting in the configured time zone."""
    db = Database.from_url(settings.database_url)
    db.default_timezone = settings.timezone
    return db


def all_settings() -> SettingsTable:
    """Every `设置` row, in the order `设置` lists them: the team's own rows, each platform's group push,
    the schedules, the points.

    Both platforms' rows are offered whatever is configured (the console too): a team may be set up
    before its platform is switched on, and the rows are plain parsing with no platform client behind them.
    """
    from bot.adapters import dingtalk_settings, wecom_settings
    from handlers import admin, points, standup

    return settings_table(
        admin.settings, wecom_settings.settings, dingtalk_settings.settings, standup.settings, points.settings
    )


def build_router(db: Database, settings: Settings, **kwargs: Any) -> Router:
    return Router(db, all_commands(), settings_table=all_settings(), admin_ids=settings.admins, **kwargs)
