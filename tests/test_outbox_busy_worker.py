"""A worker that commits keep waking still finds what no commit woke it for: a retry that falls due, a
message queued without a wake (another replica that stopped before sending). Real time, a fake WeCom on
loopback, replies committed for other groups every 20 ms throughout (each group well under its limit)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from bot.outbox import OutboxWorker, utcnow
from bot.outbox_wakes import Wakes
from storage.database import Database
from storage.store import Store
from tests.fakes.wecom import ERR_BUSY, FakeWeCom
from tests.outbox_helpers import enqueue_texts, received_texts
from tests.test_outbox_delivery import make_worker

KEY = "robot-key-0001-secret"
BUSY = [f"robot-key-busy-{n:02d}" for n in range(40)]


@contextlib.asynccontextmanager
async def replies_to_another_group(db: Database) -> AsyncIterator[list[int]]:
    """A reply committed every 20 ms to the next BUSY group until the block ends; yields how many so far."""
    sent = [0]

    async def chatter() -> None:
        while True:
            await enqueue_texts(db, BUSY[sent[0] % len(BUSY)], [f"回复 {sent[0]}"], utcnow())
            sent[0] += 1
            await asyncio.sleep(0.02)

    task = asyncio.create_task(chatter())
    try:
        yield sent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def started_worker(db: Database, worker: OutboxWorker, hooked: list[bool]) -> None:
    def on_commit(store: Store) -> None:
        if hooked[0]:
            worker.on_commit(store)

    db.on_commit(on_commit)
    await worker.start()


async def test_a_retry_falls_due_and_goes_out_while_commits_for_other_groups_keep_waking_the_worker(
    db: Database, http
) -> None:
    async with FakeWeCom(webhook_keys=[KEY, *BUSY]) as wecom:
        worker = make_worker(db, http, wecom, poll_interval=30.0, backoff_base=0.3, rng=lambda: 0.0)
        await started_worker(db, worker, [True])
        try:
            wecom.fail_webhook(KEY, ERR_BUSY, count=1)  # "system busy" once: retried after ~0.15 s
            async with replies_to_another_group(db) as busy:
                await enqueue_texts(db, KEY, ["周报已生成"], utcnow())
                await wecom.wait_for(lambda: received_texts(wecom, KEY) == ["周报已生成"], timeout=5)
                replies_meanwhile = busy[0]
        finally:
            await worker.stop()
    # The retry went out within the poll interval's first second, not after it.
    assert replies_meanwhile < 50, replies_meanwhile


async def test_a_message_no_commit_woke_the_worker_for_goes_out_within_the_poll_interval_under_load(
    db: Database, http
) -> None:
    """As when another replica queued it and stopped before its worker ran: this worker's passes are all
    woken by commits for the BUSY groups, and one of them still sweeps within the poll interval."""
    hooked = [True]
    async with FakeWeCom(webhook_keys=[KEY, *BUSY]) as wecom:
        worker = make_worker(db, http, wecom, poll_interval=0.5)
        await started_worker(db, worker, hooked)
        try:
            async with replies_to_another_group(db) as busy:
                await asyncio.sleep(0.1)
                hooked[0] = False
                await enqueue_texts(db, KEY, ["另一个副本的消息"], utcnow())
                hooked[0] = True
                queued_at = time.perf_counter()
                await wecom.wait_for(lambda: received_texts(wecom, KEY) == ["另一个副本的消息"], timeout=5)
                waited = time.perf_counter() - queued_at
                before = busy[0]
                await asyncio.sleep(0.1)
                assert busy[0] > before  # the commits kept coming the whole time
        finally:
            await worker.stop()
    assert waited < 2.0, waited


def test_a_commits_wake_claims_its_destinations_until_something_is_due_or_the_sweep_is_old() -> None:
    wakes = Wakes(every=5.0)
    assert wakes.take(woken=True, due_now=False, now=100.0) is None  # the first pass sweeps
    wakes.keys(["a", "b"])
    assert wakes.take(woken=True, due_now=False, now=101.0) == {"a", "b"}
    wakes.keys(["c"])
    assert wakes.take(woken=True, due_now=True, now=102.0) is None  # a retry is due: sweep
    wakes.keys(["d"])
    assert wakes.take(woken=False, due_now=False, now=103.0) is None  # a timer's pass sweeps
    wakes.keys(["e"])
    wakes.sweep()
    assert wakes.take(woken=True, due_now=False, now=104.0) is None  # asked for
    wakes.keys(["f"])
    assert wakes.take(woken=True, due_now=False, now=108.9) == {"f"}
    wakes.keys(["g"])
    assert wakes.take(woken=True, due_now=False, now=109.1) is None  # no sweep for five seconds
    assert wakes.take(woken=True, due_now=False, now=110.0) == set()  # a pass before took its keys

