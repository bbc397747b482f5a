"""Replies waiting for a saturated group robot go out merged, on a controllable clock, through a real HTTP round
trip to the fake WeCom: in order, once, under the byte limit, mentions kept, failures settled all together."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.adapters.wecom_webhook import MARKDOWN_MAX_BYTES
from bot.merge import DIVIDER
from bot.metrics import Metrics
from bot.outbox import OutboxWorker
from storage.database import Database
from tests.conftest import FakeClock
from tests.fakes.wecom import ERR_FREQ_LIMIT, FakeWeCom
from tests.outbox_helpers import enqueue_texts, rate_limit_answers, received_texts
from tests.test_outbox_delivery import drive, make_worker, outbox_statuses

KEY = "robot-key-merge-secret"


@pytest.fixture
async def wecom(clock: FakeClock) -> AsyncIterator[FakeWeCom]:
    async with FakeWeCom(webhook_keys=[KEY], clock=lambda: clock.now.timestamp()) as fake:
        yield fake


def parts(wecom: FakeWeCom) -> list[str]:
    return [p for text in received_texts(wecom, KEY) for p in text.split(DIVIDER)]


async def burst_of_60(db: Database, worker: OutboxWorker, clock: FakeClock, texts: list[str]) -> None:
    for n in range(0, len(texts), 3):  # three answers every 0.2 s: the worker passes between them
        await enqueue_texts(db, KEY, texts[n : n + 3], clock.now)
        await worker.run_once()
        clock.advance(seconds=0.2)


async def test_a_burst_of_60_reaches_the_group_within_a_minute_as_at_most_20_messages(
    db: Database, http, wecom, clock
) -> None:
    texts = [f"<@rep{n}> 今日计划：拜访客户{n}号，跟进报价。" + "说明" * 60 for n in range(60)]
    # A claim takes 2 rows of the destination, a merged slot leases those queued behind (claim_behind).
    worker = make_worker(db, http, wecom, clock=clock, per_destination=2, metrics=Metrics())
    started = clock.now
    await burst_of_60(db, worker, clock, texts)
    await drive(worker, clock, until=lambda: len(parts(wecom)) == 60, step=0.5)
    messages = received_texts(wecom, KEY)
    assert (clock.now - started).total_seconds() < 60
    assert len(messages) <= 20 and rate_limit_answers(wecom) == 0
    assert parts(wecom) == texts  # every part once, in order, mentions (<@rep…>) kept in their parts
    assert any(DIVIDER in m for m in messages)
    assert all(len(m.encode("utf-8")) <= MARKDOWN_MAX_BYTES for m in messages)
    assert sum(1 for m in messages if DIVIDER in m) > 1  # 45 answers of ~400 bytes: split at part boundaries
    assert await outbox_statuses(db) == {"sent": 60}
    assert worker.stats["merged"] > 0
    assert worker.metrics.outbox_sent.labels("wecom")._value.get() == 60


async def test_a_merged_message_the_platform_refuses_for_now_is_retried_and_arrives_once(
    db: Database, http, wecom, clock
) -> None:
    texts = [f"日报 {n}" for n in range(40)]
    await enqueue_texts(db, KEY, texts, clock.now)
    worker = make_worker(db, http, wecom, clock=clock)
    await worker.run_once()  # 15 single messages; the rest waits for a paced, merged slot
    assert len(received_texts(wecom, KEY)) == 15
    wecom.fail_webhook(KEY, ERR_FREQ_LIMIT, count=1)
    await drive(worker, clock, until=lambda: len(parts(wecom)) == 40, step=1)
    assert rate_limit_answers(wecom, KEY) == 1
    assert parts(wecom) == texts
    assert await outbox_statuses(db) == {"sent": 40}


async def test_a_merged_message_refused_for_good_is_sent_as_its_parts(db: Database, http, wecom, clock) -> None:
    texts = [f"公告 {n}" for n in range(20)]
    await enqueue_texts(db, KEY, texts, clock.now)
    worker = make_worker(db, http, wecom, clock=clock)
    await worker.run_once()
    wecom.fail_webhook(KEY, 40058, count=1, errmsg="invalid content")  # one permanent refusal of the merge
    await drive(worker, clock, until=lambda: len(received_texts(wecom, KEY)) == 20, step=1)
    assert received_texts(wecom, KEY) == texts  # the five merged ones went one by one after the refusal
    assert await outbox_statuses(db) == {"sent": 20}


def test_a_picture_is_never_merged_with_the_texts_around_it() -> None:
    """A saturated group's waiting replies share one message, but a picture (the retro's chart) goes alone:
    a merge stops before it, and one starting at it carries only it."""
    from bot.delivery import OutgoingMessage
    from bot.merge import fitting
    from bot.messages import Image

    picture = OutgoingMessage("周趋势", image=Image(png=b"\x89PNG", image_id="c" * 22, alt="周趋势"))
    texts = [OutgoingMessage("复盘"), OutgoingMessage("求助 #1")]
    assert fitting([*texts, picture, OutgoingMessage("晚报")], MARKDOWN_MAX_BYTES) == 2
    assert fitting([picture, *texts], MARKDOWN_MAX_BYTES) == 1
