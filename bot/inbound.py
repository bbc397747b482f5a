"""The inbound frame every adapter can use: acknowledge fast, work after (DESIGN.md).

A verified message is recorded with its payload in its unique `inbound_messages` row — the same row
that recognises a re-delivery — and the platform is answered (HTTP 200 / Stream ack) as soon as that row
has committed, typically in a few milliseconds and never after the command. The command then runs from
an in-process queue, and its transaction marks the row done together with its effects, so a crash
between the answer and the command loses nothing (`Inbound.recover` picks stale rows up, on start and
every few seconds, claiming them with a lease so two replicas never both take one) and a re-delivery
has one effect.

The platform hands in its parser (recorded payload → IncomingMessage, raising `Rejected`), what to do
with the router's own answer to a message whose command did not run (`settle_refusal`), and optionally
its event handler (org events that are not commands).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.adapters.common import Rejected
from bot.messages import IncomingMessage, Reply
from bot.metrics import note_duplicate
from bot.router import Router
from storage.database import Database
from storage.store import Store

# The recording process holds the row for ACCEPT_LEASE_S (its queue may be backed up under load;
# another replica must not run it meanwhile); a row still "received" after that — the process crashed,
# or its queue overflowed — is claimed with a fresh lease by whichever replica looks first.
QUEUE_MAX = 10_000
ACCEPT_LEASE_S = 30.0
RECOVER_AFTER_S = 5.0
RECOVER_EVERY_S = 5.0
RECOVER_LEASE_S = 60.0
RECOVER_BATCH = 200
ACK_PRIORITY_S = 0.02
# A batch formed while another runs, or soon after the last one, waits this long for company (`_gather`):
# busy, each message alone would cost a transaction, a claim and a settle of its own.
GATHER_S = 0.004
BUSY_S = 0.01
# Queued commands that share one transaction at most (see Router.handle_queued).
BATCH_MAX = 32

Parse = Callable[[Any], IncomingMessage]
SettleRefusal = Callable[[Store, IncomingMessage, list[Reply], datetime], Awaitable[None]]
EventHandler = Callable[[dict[str, Any], str], Awaitable[None]]


def default_queue_workers(db: Database) -> int:
    """Commands in flight at once: SQLite has one writer (and a pool of one), PostgreSQL many."""
    return 1 if db.is_sqlite else 3


@dataclass
class Inbound:
    """Turns a verified payload or event of one platform into router work; shared by its HTTP and
    long-connection modes."""

    platform: str
    db: Database
    router: Router
    parse: Parse
    settle_refusal: SettleRefusal
    on_event: EventHandler | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    tasks: set[asyncio.Future[Any]] = field(default_factory=set)
    queue: asyncio.Queue[IncomingMessage] | None = None
    queued_ids: set[tuple[str, str]] = field(default_factory=set)  # (org_key, msg_id) waiting in the queue
    _runners: list[asyncio.Task[Any]] = field(default_factory=list)
    _workers: int = 0
    recovered_once: asyncio.Event = field(default_factory=asyncio.Event)  # the start-up pass is done
    _acks: int = 0
    _acks_idle: asyncio.Event = field(default_factory=asyncio.Event)
    batch_sizes: Counter[int] = field(default_factory=Counter)  # how many commands shared a transaction
    _gathering: asyncio.Lock = field(default_factory=asyncio.Lock)  # one worker forms a batch at a time
    _running: int = 0  # batches being run
    _last_batch: float = 0.0  # loop time the last batch was formed

    def __post_init__(self) -> None:
        self._acks_idle.set()
        self.log = logging.getLogger(f"salesbot.{self.platform}")

    # ---------------------------------------------------------------- acknowledgements first
    # Commands are CPU-bound and share the event loop with the webhook. A queue worker about to start
    # a command first lets callbacks in flight finish (up to ACK_PRIORITY_S), so acknowledgements do
    # not queue behind commands; past that it starts anyway, so commands are never starved.
    def ack_started(self) -> None:
        self._acks += 1
        self._acks_idle.clear()

    def ack_finished(self) -> None:
        self._acks -= 1
        if self._acks <= 0:
            self._acks = 0
            self._acks_idle.set()

    # ---------------------------------------------------------------- the queue
    def start(self, workers: int | None = None, *, recover_every: float | None = RECOVER_EVERY_S) -> None:
        """Start the queue's workers and (unless `recover_every` is None) the periodic recovery."""
        if self.queue is None:  # a second start() adds workers to the same queue
            self.queue = asyncio.Queue(QUEUE_MAX)
        workers = default_queue_workers(self.db) if workers is None else workers
        for n in range(self._workers, self._workers + workers):
            self._runners.append(asyncio.create_task(self._work(), name=f"{self.platform}-inbound-{n}"))
        self._workers += workers
        if recover_every is not None:
            recover = self._recover_loop(recover_every)
            self._runners.append(asyncio.create_task(recover, name=f"{self.platform}-recover"))

    async def stop(self, timeout: float = 5.0) -> None:
        """Finish what is queued (up to `timeout`; the rest stays recorded for recovery), then stop."""
        if self.queue is not None and self._workers:
            try:
                await asyncio.wait_for(self.queue.join(), timeout)
            except TimeoutError:
                self.log.warning("%s inbound: %d queued messages left for recovery", self.platform, self.queue.qsize())
        for task in self._runners:
            task.cancel()
        await asyncio.gather(*self._runners, return_exceptions=True)
        self._runners.clear()
        if self.batch_sizes:  # how well commits were shared: what to look at when commands cost too much CPU
            batches, messages = sum(self.batch_sizes.values()), sum(n * k for n, k in self.batch_sizes.items())
            self.log.info("%s inbound: %d messages in %d transactions (%.1f a transaction, at most %d)",
                          self.platform, messages, batches, messages / batches, max(self.batch_sizes))

    async def idle(self) -> None:
        """Wait until every queued command has been processed (tests, shutdown)."""
        if self.queue is not None and self._workers:
            await self.queue.join()
        await self.drain()

    async def accept(self, payload: Any, *, sign: str | None = None, msg: IncomingMessage | None = None) -> bool:
        """Record a verified payload durably and queue it; False for a re-delivery.

        Returns once the row has committed, which is when the platform may be answered: from then
        on a crash loses nothing (recovery picks the row up) and a re-delivery is recognised. `sign`:
        the callback's signature when it does not cover the body (DingTalk's robot), checked for
        replay when the command runs (storage.inbound). `msg`: the payload already parsed (the callback
        validates it before acknowledging).
        """
        msg = msg or self.parse(payload)
        now = self.clock()
        row_id = await self.db.queue_inbound(self.platform, msg.msg_id, msg.org_key, payload, now,
                                             lease_until=now + timedelta(seconds=ACCEPT_LEASE_S), sign=sign)
        if row_id is not None:
            self._submit(dataclasses.replace(msg, inbound_id=row_id))
        else:
            note_duplicate()  # the callback counts as a duplicate (bot.metrics)
            self.log.info("duplicate delivery acknowledged platform=%s org=%s msg_id=%s", self.platform, msg.org_key,
                          msg.msg_id)
        return row_id is not None

    def _submit(self, msg: IncomingMessage) -> None:
        if (msg.org_key, msg.msg_id) in self.queued_ids:
            return
        if self.queue is None:  # not started (a bare Inbound): process in a task of its own
            self._spawn(self.process(msg))
            return
        try:
            self.queue.put_nowait(msg)
        except asyncio.QueueFull:
            self.log.warning("%s inbound queue full; msg_id=%s left for recovery", self.platform, msg.msg_id)
            return
        self.queued_ids.add((msg.org_key, msg.msg_id))

    async def _work(self) -> None:
        """Form a batch, then run it; while it runs, another worker forms the next.

        One worker at a time waits on the queue and lets acknowledgements in flight finish first: what
        arrives meanwhile joins its batch instead of going to an idle worker as a transaction of its own
        (alone, a message costs about five times its share of a batch).
        """
        assert self.queue is not None
        while True:
            async with self._gathering:
                batch = [await self.queue.get()]
                try:
                    if not self._acks_idle.is_set():
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._acks_idle.wait(), ACK_PRIORITY_S)
                    # Whatever queued up meanwhile runs in the same transaction (Router.handle_queued):
                    # at low load a batch is one message; under load the commit is shared.
                    while len(batch) < BATCH_MAX and not self.queue.empty():
                        batch.append(self.queue.get_nowait())
                    await self._gather(batch)
                except BaseException:
                    self._done_with(batch)
                    raise
            self._running += 1
            try:
                self.batch_sizes[len(batch)] += 1
                await self.process_batch(batch)
            except Exception:
                # Stays "received": recovery retries it once it is stale.
                self.log.exception("%s inbound: processing failed msg_ids=%s", self.platform,
                                   ",".join(m.msg_id for m in batch))
            finally:
                self._running -= 1
                self._done_with(batch)

    async def _gather(self, batch: list[IncomingMessage]) -> None:
        """When the process is busy (a batch runs, or the last one was formed under BUSY_S ago), wait up to
        GATHER_S for more messages to join `batch`. At 300 messages a second this pairs them and takes a
        fifth off each one's CPU; idle, a message goes at once."""
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        now = loop.time()
        busy = self._running > 0 or now - self._last_batch < BUSY_S
        self._last_batch = now
        if not busy:
            return
        deadline = now + GATHER_S
        while len(batch) < BATCH_MAX:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except TimeoutError:
                return
            while len(batch) < BATCH_MAX and not self.queue.empty():
                batch.append(self.queue.get_nowait())

    def _done_with(self, batch: list[IncomingMessage]) -> None:
        assert self.queue is not None
        for msg in batch:
            self.queued_ids.discard((msg.org_key, msg.msg_id))
            self.queue.task_done()

    async def process(self, msg: IncomingMessage) -> None:
        """Run a recorded command; its transaction marks the inbound row done with its effects."""
        await self.process_batch([msg])

    async def process_batch(self, msgs: list[IncomingMessage]) -> None:
        for msg, replies in zip(msgs, await self.router.handle_queued(msgs), strict=False):
            await self._settle_unanswered(msg, replies)

    async def _settle_unanswered(self, msg: IncomingMessage, replies: list[Reply]) -> None:
        if replies:
            # The router's own apology (its transaction rolled back, the row is still "received") or
            # NO_TEAM_YET (committed): queue it, and settle a failed row so it is not retried.
            now = self.clock()
            async with self.db.transaction() as store:
                await store.finish_inbound(self.platform, msg.org_key, msg.msg_id, now, status="failed")
                await store.bind(platform=self.platform, org_key=msg.org_key, chat_id=msg.chat_id,
                                 chat_title=msg.chat_title, user_id=None, user_name=None, now=now)
                await self.settle_refusal(store, msg, replies, now)

    # ---------------------------------------------------------------- recovery
    async def recover(self, older_than_s: float | None = None) -> int:
        """Claim recorded-but-unprocessed messages older than `older_than_s` whose lease has lapsed
        (their process died, or its queue overflowed) and queue them here."""
        older_than_s = RECOVER_AFTER_S if older_than_s is None else older_than_s
        now = self.clock()
        async with self.db.transaction() as store:
            rows = await store.claim_stale_inbound(
                self.platform, received_before=now - timedelta(seconds=older_than_s), now=now,
                lease_until=now + timedelta(seconds=RECOVER_LEASE_S), limit=RECOVER_BATCH)
        for row_id, org_key, msg_id, payload in rows:
            try:
                msg = self.parse(payload)
            except Rejected as err:
                self.log.error("%s inbound: unreadable recorded payload org=%s msg_id=%s: %s",
                               self.platform, org_key, msg_id, err.reason)
                continue
            self.log.warning("%s inbound: recovering org=%s msg_id=%s", self.platform, org_key, msg_id)
            self._submit(dataclasses.replace(msg, inbound_id=row_id))
        return len(rows)

    async def _recover_loop(self, every: float) -> None:
        while True:
            try:
                await self.recover()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("%s inbound: recovery pass failed", self.platform)
            self.recovered_once.set()
            await asyncio.sleep(every)

    # ---------------------------------------------------------------- events and deadlines
    async def handle_event(self, event: dict[str, Any], dedup_id: str) -> None:
        """An org event (not a command), handed to the platform's handler; ignored without one."""
        if self.on_event is not None:
            await self.on_event(event, dedup_id)

    async def within(self, work: Awaitable[Any], budget_s: float) -> None:
        """Wait for `work` up to the platform's deadline; past it, let it finish in the background."""
        task = self._spawn(work)
        try:
            await asyncio.wait_for(asyncio.shield(task), budget_s)
        except TimeoutError:
            self.log.warning("%s work exceeded %.0f ms, continuing in background", self.platform, budget_s * 1000)

    def _spawn(self, work: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            err = task.exception()
            self.log.error("%s inbound work failed: %s", self.platform, err, exc_info=err)

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
