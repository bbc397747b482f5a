"""WeCom configuration fails at start naming the variable; the CLI sets a team's webhook."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import default_components
from bot.cli import main
from bot.settings import ConfigError, load_settings
from storage.database import Database
from storage.models import Team

KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def test_bad_aes_key_and_missing_token_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="SALESBOT_WECOM_AIBOT_AES_KEY"):
        load_settings({"SALESBOT_WECOM_AIBOT_TOKEN": "t", "SALESBOT_WECOM_AIBOT_AES_KEY": KEY[:-1]})
    with pytest.raises(ConfigError, match="SALESBOT_WECOM_AIBOT_TOKEN"):
        load_settings({"SALESBOT_WECOM_AIBOT_AES_KEY": KEY})
    with pytest.raises(ConfigError, match="SALESBOT_WECOM_APP_AES_KEY"):
        load_settings({"SALESBOT_WECOM_APP_TOKEN": "t", "SALESBOT_WECOM_CORP_ID": "ww"})
    settings = load_settings({"SALESBOT_WECOM_AIBOT_TOKEN": "t", "SALESBOT_WECOM_AIBOT_AES_KEY": KEY})
    from bot.adapters.wecom import wecom_component

    assert settings.wecom_enabled and wecom_component in default_components(settings)
    assert wecom_component not in default_components(load_settings({}))


def test_cli_sets_the_team_webhook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"

    async def make_team() -> None:
        db = Database.from_url(url)
        await db.prepare()
        async with db.transaction() as store:
            await store.bind(platform="wecom", org_key="wwcorp", chat_id="grp1", chat_title="一组", user_id=None,
                             user_name=None, now=datetime.now(UTC))
        await db.close()

    async def team_settings() -> dict:
        db = Database.from_url(url)
        async with db.transaction() as store:
            team = (await store.session.execute(__import__("sqlalchemy").select(Team))).scalar_one()
            settings = dict(team.settings)
        await db.close()
        return settings

    asyncio.run(make_team())
    key = "693a91f6-7aaa-4bc4-97a0-0ec2sifa5aaa"
    webhook = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={key}"
    assert main(["team", "set-webhook", webhook, "--chat", "grp1", "--org", "wwcorp", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "693a" in out and key not in out
    assert asyncio.run(team_settings())["wecom_webhook_key"] == key
    assert main(["team", "set-webhook", webhook, "--chat", "nope", "--org", "wwcorp", "--db", url]) == 1
    assert main(["team", "set-webhook", "https://example.com/", "--chat", "grp1", "--org", "wwcorp", "--db", url]) == 2
