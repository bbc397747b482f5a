"""`salesbot outbox` tells an operator what is stuck and why, without leaking a webhook key, and
`salesbot outbox retry` puts failed messages back in the queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import cli
from bot.outbox import utcnow
from storage.database import Database
from storage.outbox_queue import Failure, Outcome
from tests.outbox_helpers import enqueue_texts

KEY = "cli-robot-key-very-secret"


def _prepare(url: str) -> None:
    async def run() -> None:
        db = Database.from_url(url)
        await db.prepare()
        await enqueue_texts(db, KEY, ["一", "二", "三"], utcnow())
        queue = db.outbox
        claimed = await queue.claim(utcnow(), lease_seconds=60, batch_size=1, per_destination=1)
        failure = Failure(claimed[0].id, "webhook cli-***: errcode 93000 invalid webhook url")
        await queue.finish(Outcome([], [], [failure], []), utcnow())
        await db.close()

    asyncio.run(run())


def test_status_shows_counts_and_errors_but_no_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    _prepare(url)
    assert cli.main(["outbox", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "pending: 2" in out and "failed: 1" in out
    assert "93000" in out
    assert KEY not in out and "very-secret" not in out


def test_retry_failed_requeues_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    _prepare(url)
    assert cli.main(["outbox", "retry", "--failed", "--db", url]) == 0
    assert "1 条" in capsys.readouterr().out
    assert cli.main(["outbox", "--db", url]) == 0
    assert "pending: 3" in capsys.readouterr().out
    assert cli.main(["outbox", "retry", "--db", url]) == 2
    assert cli.main(["outbox", "retry", "1", "--db", url]) == 0


def test_retry_failed_also_lifts_broken_push_marks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`retry --failed` means "fixed on the platform side": the team's broken mark goes, or the requeued
    rows would fail fast again (bot.broken)."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    async def mark() -> None:
        db = Database.from_url(url)
        await db.prepare()
        async with db.transaction() as store:
            await store.bind(platform="wecom", org_key="wwcorp", chat_id="grp", chat_title="一组", user_id=None,
                             user_name=None, now=utcnow())
            await store.update_team_settings(
                {"wecom_webhook_key": KEY, "wecom_webhook_broken": {"fingerprint": "x"}}, utcnow()
            )
        await db.close()

    async def settings() -> dict[str, object]:
        db = Database.from_url(url)
        from storage.models import Team

        async with db.session() as session:
            team = await session.get(Team, 1)
            value = dict(team.settings) if team else {}
        await db.close()
        return value

    asyncio.run(mark())
    assert cli.main(["outbox", "retry", "--failed", "--db", url]) == 0
    assert "解除 1 个群" in capsys.readouterr().out
    assert asyncio.run(settings())["wecom_webhook_broken"] is None
