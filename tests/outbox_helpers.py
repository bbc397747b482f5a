"""Shared pieces for the outbox tests: enqueue in a transaction, read what the fake WeCom received."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from bot.adapters.wecom_webhook import MARKDOWN_MAX_BYTES, webhook_dest_key, webhook_destination
from bot.delivery import OutgoingMessage
from bot.outbox import enqueue_message
from storage.database import Database
from tests.fakes.wecom import ERR_FREQ_LIMIT, WEBHOOK_PATH, FakeWeCom


async def enqueue_texts(db: Database, key: str, texts: list[str], now: datetime) -> None:
    """One transaction, like a command that decided to say several things to one group."""
    async with db.transaction() as store:
        for text in texts:
            await enqueue_message(
                store, "wecom", webhook_destination(key), webhook_dest_key(key), OutgoingMessage(text), now,
                max_bytes=MARKDOWN_MAX_BYTES,
            )


def received_texts(fake: FakeWeCom, key: str) -> list[str]:
    return [m["markdown"]["content"] for m in fake.webhook_messages(key)]


def rate_limit_answers(fake: FakeWeCom, key: str | None = None) -> int:
    return sum(
        1
        for r in fake.received
        if r.path == WEBHOOK_PATH and r.errcode == ERR_FREQ_LIMIT and (key is None or r.query.get("key") == key)
    )


def duplicates(texts: list[str]) -> int:
    return sum(n - 1 for n in Counter(texts).values())


def first_occurrence_order(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(texts))
