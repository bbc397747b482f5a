"""Durable outbound delivery: everything salesbot says on its own goes through the `outbox` table.

A command enqueues its announcements inside its own transaction (`enqueue_message`), so a claim and its
group announcement commit together or not at all. `OutboxWorker` then delivers due rows through the
`Deliverer` registered for each row's platform:

* it is woken by `Database.on_commit` the moment a transaction that enqueued something commits, and
  otherwise sleeps until the next row is due (retries, other replicas' rows) or `poll_interval` passes;
  a commit's pass claims the destinations it queued for, the others sweep (bot.outbox_wakes);
* it keeps order per destination (see storage.outbox_queue for how the claim enforces it across replicas);
* on PostgreSQL a commit's wake starts a pass beside the last one once that has waited on the platform
  for OVERLAP_AFTER_S (up to MAX_PASSES at once): a slow answer for one group does not hold up replies
  to the others, while quick passes still follow each other and share their claims;
* it never exceeds a destination's rate limit (sliding window per limit key: in PostgreSQL, shared by
  every replica, storage.send_windows; in the process on SQLite) — when the window is full the rows are
  handed back with the time the next slot frees, nobody sleeps holding them;
* when a destination is saturated (bot.ratelimit.plan_slots) the replies waiting for it, claimed and queued
  behind, go out merged into one message per slot (bot.merge), and are marked sent together with it;
* a picture row (the retro's chart) is drawn just before it is sent, its PNG stored first (bot.charts);
* `RetryLater` → exponential backoff with jitter (at least the platform's `after`); `PermanentFailure` →
  `failed` with the platform's reason; a broken destination fails its backlog at once.
* a team's group push (WeCom webhook, DingTalk custom robot) that the platform calls broken is marked
  durably on the team and its admins are told once (bot.broken); rows to it then fail without a platform
  call until an admin sets a new one. Other broken destinations are skipped in-process for `broken_ttl`.

Delivery is at-least-once: rows are marked sent when their batch settles, so a crash between sending and
settling re-sends at most that batch (README, "Delivery guarantees").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.broken import BrokenPushes, blocked_reason
from bot.charts import ready_to_send
from bot.delivery import Deliverer, OutgoingMessage, PermanentFailure, RateLimit, RetryLater, split_text
from bot.merge import fitting, merged
from bot.metrics import Metrics
from bot.outbox_wakes import Wakes, next_wake
from bot.ratelimit import SendWindow, SlidingWindowLimiter, Slots, plan_slots, retimed
from storage.database import Database
from storage.outbox_queue import ClaimedRow, Failure, Outcome, Retry
from storage.send_windows import SendWindows
from storage.store import Store

log = logging.getLogger("salesbot.outbox")

Clock = Callable[[], datetime]
MAX_PASSES = 4
Team = tuple[int, dict[str, Any]]  # a row's team id and settings as claimed (durable broken-push marks)


def utcnow() -> datetime:
    return datetime.now(UTC)


async def enqueue_message(
    store: Store,
    platform: str,
    destination: dict[str, Any],
    dest_key: str,
    message: OutgoingMessage,
    now: datetime,
    dedup_key: str | None = None,
    max_bytes: int | None = None,
) -> int:
    """Queue `message` in the caller's transaction, split into ordered parts under `max_bytes`.

    Returns the number of rows added (0 when `dedup_key` was queued before). The first part carries the
    plain `dedup_key` — so "was this logical message queued?" is one lookup — and the title; later parts
    get `#2`, `#3`… suffixes. The title's bytes are reserved in every part's budget because a renderer
    puts it in front of the text.
    """
    texts = [message.text]
    if max_bytes is not None:
        reserve = len(message.title.encode("utf-8")) + 16 if message.title else 0
        texts = split_text(message.text, max(max_bytes - reserve, 64))
    added = 0
    for index, text in enumerate(texts):
        image = message.image if index == len(texts) - 1 else None
        part = OutgoingMessage(text=text, title=message.title if index == 0 else None, names=message.names, image=image)
        key = None if dedup_key is None else (dedup_key if index == 0 else f"{dedup_key}#{index + 1}")
        ok = await store.enqueue(
            platform=platform, destination=destination, dest_key=dest_key, body=part.to_json(), now=now, dedup_key=key
        )
        if not ok and index == 0:
            return 0
        added += int(ok)
    return added


@dataclass
class _Group:
    """One destination's rows in a pass and what their sends need; `team` changes when its push breaks."""

    deliverer: Deliverer
    destination: dict[str, Any]
    rows: list[ClaimedRow]
    outcome: Outcome
    broken: list[tuple[str, str]]
    team: Team | None


class OutboxWorker:
    """Sends due outbox rows; one per bot process, any number per PostgreSQL database."""

    def __init__(
        self,
        db: Database,
        deliverers: dict[str, Deliverer],
        *,
        clock: Clock = utcnow,
        batch_size: int = 200,
        per_destination: int = 20,
        lease_seconds: float = 120.0,
        poll_interval: float = 5.0,
        max_attempts: int = 20,
        backoff_base: float = 2.0,
        backoff_cap: float = 600.0,
        broken_ttl: float = 600.0,
        rng: Callable[[], float] = random.random,
        windows: SendWindow | None = None,
        admin_ids: tuple[str, ...] = (),
        broken_pushes: BrokenPushes | None = None,
        coalesce_seconds: float = 0.005,
        metrics: Metrics | None = None,
        merge_bursts: bool = True,
        rate_margin: float = 1.0,
        max_passes: int | None = None,
    ) -> None:
        self.db = db
        self.queue = db.outbox
        self.deliverers = deliverers
        self.clock = clock
        self.batch_size = batch_size
        self.per_destination = per_destination
        # The lease must outlast a whole batch (per_destination sends in a row, each with its HTTP
        # timeout); a lease that expires mid-send lets another replica send the same row again.
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.coalesce_seconds = coalesce_seconds
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.broken_ttl = broken_ttl
        self.rng = rng
        # SQLite means one bot process: its window can live in memory. PostgreSQL may have replicas.
        if windows is None:
            windows = SlidingWindowLimiter() if db.is_sqlite else SendWindows(db.engine, db.direct)
        self.windows: SendWindow = windows
        self.merge_bursts = merge_bursts
        # PostgreSQL: a pass that has waited on the platform for OVERLAP_AFTER_S lets the next one start
        # beside it; SQLite: one writer, so one pass at a time.
        self.max_passes = max_passes or (1 if db.is_sqlite else MAX_PASSES)
        # The platform counts a message when it receives it, we when we send it (and replicas' clocks
        # differ a little): the window is this much longer than the platform's.
        self.rate_margin = rate_margin
        # Rows whose merged message the platform refused for good: one of them may be the cause, so they
        # go one by one from now on (in this process; another replica may merge them once more).
        self._solo: set[int] = set()
        self.stats: Counter[str] = Counter()
        self.metrics = metrics  # the app's (bot.metrics): settled rows counted by platform
        self._broken: dict[str, tuple[str, datetime]] = {}
        self.broken_pushes = broken_pushes or BrokenPushes(db, admin_ids)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._due: datetime | None = None  # when the next row falls due, as the last pass read it
        self._passes_started = 0
        self._last_pass_at = 0.0  # loop time the last pass started
        self._wakes = Wakes(poll_interval)  # what the next pass claims (bot.outbox_wakes)

    # ----------------------------------------------------------------- lifecycle
    def wake(self) -> None:
        """Deliver whatever is due now. Cheap and safe from any callback."""
        self._wakes.sweep()
        self._wake.set()

    def on_commit(self, store: Store) -> None:
        """`Database.on_commit` hook: wake only for transactions that enqueued something, for the
        destinations they queued for."""
        if store.enqueued > 0:
            self._wakes.keys(store.enqueued_keys)
            self._wake.set()

    async def start(self) -> None:
        if self._task is not None:
            return
        if self.db.is_sqlite:
            # SQLite means one bot process, so any row still `sending` was in flight when it died.
            reclaimed = await self.queue.reclaim_all_leases()
            if reclaimed:
                log.warning("outbox: %d messages were in flight at the last shutdown; sending them again", reclaimed)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="outbox-worker")

    async def stop(self, timeout: float = 15.0) -> None:
        """Let the batch in flight settle (fewer duplicates after a restart), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        """Passes, each started by a commit's wake (or a timer); up to `max_passes` at once.

        A pass waits on its platform calls; a reply committed meanwhile need not wait for them once
        those are slow (bot.outbox_wakes.next_wake). The claim never hands out a destination whose head
        is in flight, so concurrent passes keep each destination's order, and the windows are swapped
        atomically (storage.send_windows).
        """
        woken = False
        passes: set[asyncio.Task[float]] = set()
        try:
            while not self._stopping:
                # What the pass claims is decided as the wake is cleared: a commit after this wakes the
                # next pass, for its own destinations.
                self._wake.clear()
                due_now = self._due is not None and self._due <= self.clock()
                keys = self._wakes.take(woken, due_now, time.monotonic())
                current = asyncio.create_task(self._pass(keys), name="outbox-pass")
                self._last_pass_at = asyncio.get_running_loop().time()
                passes.add(current)
                current.add_done_callback(passes.discard)
                woken = await next_wake(self._wake, current, passes, self._last_pass_at, self.max_passes)
                if woken and not self._stopping:
                    # Give the commits right behind this one a moment to land, so that under load one
                    # claim takes many rows instead of each commit paying for a claim of its own.
                    await asyncio.sleep(self.coalesce_seconds)
        except asyncio.CancelledError:
            for running in passes:  # stop() ran out of patience: the sends in flight go with it
                running.cancel()
            raise
        finally:
            if passes:
                await asyncio.gather(*passes, return_exceptions=True)

    async def _pass(self, keys: set[str] | None) -> float:
        """One pass, for `keys` or (None) everything due; how long to sleep after it when no commit wakes
        the worker."""
        self._passes_started += 1
        started = self._passes_started
        try:
            held: list[str] = []
            deferred = await self._deliver_due(keys, held)
            if held and self._passes_started != started:
                # A pass that started meanwhile could not take the rows queued behind what this one
                # held in flight: look again now that they are heads.
                self._wakes.keys(held)
                self._wake.set()
            # When the next row falls due is read after a pass that put rows off (retries, rate limits)
            # or that swept (backoffs and leases of other workers). A pass a commit woke, that sent all
            # it claimed, changed nothing due later: keep the last answer. Rows due already are not
            # counted: the sweep took them, or they came after its claim and their commit wakes a pass.
            if deferred or keys is None:
                self._due = await self.queue.next_due(after=self.clock())
            if self._due is not None:
                return min(max((self._due - self.clock()).total_seconds(), 0.05), self.poll_interval)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("outbox: worker pass failed; retrying in %.0fs", self.poll_interval)
        return self.poll_interval

    # ----------------------------------------------------------------- delivery
    async def run_once(self) -> int:
        """Deliver everything claimable right now; return how many rows were claimed.

        Tests with a fake clock call this directly instead of starting the background task.
        """
        held: list[str] = []
        await self._deliver_due(None, held)
        return len(held)

    async def _deliver_due(self, keys: set[str] | None, held: list[str]) -> bool:
        """Claim and deliver until nothing claimable is left; whether any row was put off. `held` learns
        each claimed row's destination. `keys`: first claim only those destinations' rows
        (bot.outbox_wakes); after a full claim or a failure the pass goes on with everything due."""
        if keys is not None and not keys:
            return False  # woken for destinations a pass before claimed
        deferred = False
        while not self._stopping:
            rows = await self.queue.claim(
                self.clock(),
                lease_seconds=self.lease_seconds,
                batch_size=self.batch_size,
                per_destination=self.per_destination,
                dest_keys=keys,
            )
            keys = None
            if not rows:
                break
            held += (row.dest_key for row in rows)
            outcome = await self._deliver_batch(rows)
            deferred = deferred or bool(outcome.retries or outcome.released)
            if not self._claim_was_full(rows) and not outcome.failures:
                # Everything claimable was in this batch, and no failure queued a notice meanwhile:
                # no need for an empty claim to say so.
                break
        return deferred

    def _claim_was_full(self, rows: list[ClaimedRow]) -> bool:
        """Whether a claim may have left claimable rows behind (the batch or a destination's share full)."""
        if len(rows) >= self.batch_size:
            return True
        per_destination = Counter(row.dest_key for row in rows)
        return max(per_destination.values()) >= self.per_destination

    async def _deliver_batch(self, rows: list[ClaimedRow]) -> Outcome:
        groups: dict[str, list[ClaimedRow]] = {}
        for row in rows:
            groups.setdefault(row.dest_key, []).append(row)
        outcome = Outcome.empty()
        broken: list[tuple[str, str]] = []
        await asyncio.gather(*(self._deliver_group(group, outcome, broken) for group in groups.values()))
        now = self.clock()
        await self.queue.finish(outcome, now)
        failed_whole: list[tuple[str, int]] = []
        for dest_key, reason in broken:
            failed = await self.queue.fail_destination(dest_key, reason, now)
            self.stats["failed"] += failed
            failed_whole.append((groups[dest_key][0].platform, failed))
        self.stats["sent"] += len(outcome.sent)
        if self.metrics is not None:
            # Every row settled: those claimed and those a merged slot leased behind them (`_mergeable`).
            platforms = {row.id: row.platform for group in groups.values() for row in group}
            self.metrics.outbox_settled(platforms, outcome, failed_whole)
        if self._solo:
            self._solo.difference_update(outcome.sent)
            self._solo.difference_update(f.id for f in outcome.failures)
        return outcome

    async def _deliver_group(
        self, rows: list[ClaimedRow], outcome: Outcome, broken: list[tuple[str, str]]
    ) -> None:
        """Send one destination's rows strictly in order; stop at the first row that must wait.

        Slots of the destination's window are taken for a run of rows at once; a slot taken while the
        destination is saturated carries every waiting row that fits (`rows` grows by the ones queued
        behind the claim, see `_mergeable`).
        """
        head = rows[0]
        prepared = await self._prepare_group(rows, outcome)
        if prepared is None:
            return
        deliverer, destination, limit, limit_key = prepared
        # The durable broken marks live on the team, read with the claim.
        team: Team | None = (
            (head.team_id, head.team_settings)
            if head.platform in ("wecom", "dingtalk") and head.team_id is not None and head.team_settings is not None
            else None
        )
        index = 0
        while index < len(rows):
            row = rows[index]
            blocked = blocked_reason(row.platform, row.destination, team[1]) if team is not None else None
            if blocked is not None:
                # Checked before the rate limiter: failing fast spends no quota and calls no platform.
                self.stats["failed"] += 1
                outcome.failures.append(Failure(row.id, blocked))
                index += 1
                continue
            now = self.clock()
            slots = Slots(len(rows) - index)
            if limit is not None:
                slots = await self._take_slots(limit_key, limit, now, len(rows) - index)
                if not slots.count:
                    # Not an attempt and not an error: the row simply waits for the window to slide.
                    due = now + timedelta(seconds=slots.wait)
                    outcome.retries.append(Retry(row.id, due, None, count_attempt=False))
                    outcome.released.extend(r.id for r in rows[index + 1 :])
                    self.stats["deferred"] += 1
                    return
            group = _Group(deliverer, destination, rows, outcome, broken, team)
            index, go_on, used = await self._use_slots(group, index, slots)
            team = group.team
            if limit is not None:
                await self._retime(limit_key, limit, now.timestamp(), slots.count, used)
            if not go_on:
                return

    async def _use_slots(self, group: _Group, index: int, slots: Slots) -> tuple[int, bool, list[float]]:
        """Send the rows from `index` in the slots taken; the next index, whether to go on, when each was used."""
        rows = group.rows
        used: list[float] = []
        while len(used) < slots.count and index < len(rows):
            row = rows[index]
            blocked = blocked_reason(row.platform, row.destination, group.team[1]) if group.team is not None else None
            if blocked is not None:
                self.stats["failed"] += 1
                group.outcome.failures.append(Failure(row.id, blocked))
                index += 1
                continue
            batch = [row]
            if slots.merge:
                batch = await self._mergeable(rows, index, group.deliverer.max_bytes(group.destination), group.team)
            index += len(batch)
            go_on = await self._send(group, batch, rows[index:])
            used.append(self.clock().timestamp())
            if not go_on:
                return index, False, used
        return index, True, used

    async def _take_slots(self, key: str, limit: RateLimit, now: datetime, want: int) -> Slots:
        """Slots of `key`'s window per bot.ratelimit.plan_slots, taken atomically (across replicas on PG)."""
        window = limit.per_seconds + self.rate_margin
        at = now.timestamp()
        plan = Slots(0)

        def change(sent: list[float]) -> list[float] | None:
            nonlocal plan
            plan = plan_slots(sent, limit.count, window, at, want=want, merge=self.merge_bursts)
            return [*sent, *([at] * plan.count)] if plan.count else None

        if await self.windows.update(key, at, window, change):
            return plan
        if plan.count:  # other replicas kept writing this key: ask again in a moment
            return Slots(0, merge=plan.merge, wait=0.05)
        return plan

    async def _retime(self, key: str, limit: RateLimit, at: float, granted: int, used: list[float]) -> None:
        """Record the slots taken at `at` as used (bot.ratelimit.retimed), when that differs from `at`.

        A run of fast sends keeps its slots as taken (no statement); slow sends (each platform call may
        take up to its timeout) or a run cut short are written as they happened.
        """
        if len(used) == granted and all(t - at <= self.rate_margin / 2 for t in used):
            return
        window = limit.per_seconds + self.rate_margin
        await self.windows.update(key, self.clock().timestamp(), window, lambda sent: retimed(sent, at, granted, used))

    async def _mergeable(
        self, rows: list[ClaimedRow], index: int, max_bytes: int, team: Team | None
    ) -> list[ClaimedRow]:
        """The rows from `index` on that this slot's merged message carries, in order, under `max_bytes`.

        When every claimed row would fit, the rows queued behind the claim are leased too (appended to
        `rows`, so that whatever does not fit is handed back or sent in a later slot like the others).
        """
        run = self._merge_run(rows, index, team)
        if index + len(run) == len(rows) and rows[index].id not in self._solo:
            rows.extend(await self.queue.claim_behind(
                rows[-1].dest_key, rows[-1].id, self.clock(), lease_seconds=self.lease_seconds, limit=self.batch_size
            ))
            run = self._merge_run(rows, index, team)
        return run[: fitting([OutgoingMessage.from_json(r.body) for r in run], max_bytes)]

    def _merge_run(self, rows: list[ClaimedRow], index: int, team: Team | None) -> list[ClaimedRow]:
        """Consecutive rows from `index` that may share a message: none blocked, none to be sent alone."""
        run = [rows[index]]
        if rows[index].id in self._solo:
            return run
        for row in rows[index + 1 :]:
            if row.id in self._solo or (team is not None and blocked_reason(row.platform, row.destination, team[1])):
                break
            run.append(row)
        return run

    async def _send(self, group: _Group, batch: list[ClaimedRow], rest: list[ClaimedRow]) -> bool:
        """Deliver one message — one row, or several merged, all settled alike; whether to go on with `rest`.

        A merged message the platform asks to retry is retried as its rows: the next pass merges them
        again from the window as it is then (with whatever queued meanwhile), nothing stored needs undoing.
        """
        head = batch[0]
        now = self.clock()
        outcome, team = group.outcome, group.team
        try:
            message = merged([OutgoingMessage.from_json(r.body) for r in batch])
            message = await ready_to_send(self.db, message, head.team_id, now)  # a picture is drawn now
            started = time.perf_counter()
            await group.deliverer.deliver(group.destination, message)
            if self.metrics is not None:
                self.metrics.delivered(head.platform, time.perf_counter() - started)
        except RetryLater as err:
            self._retry(outcome, batch, err.reason, err.after)
            outcome.released.extend(r.id for r in rest)
            return False
        except PermanentFailure as err:
            if len(batch) > 1 and not err.destination_broken:
                log.warning("outbox: merged messages %d–%d refused (%s); sending them one by one",
                            head.id, batch[-1].id, err.reason)
                self._solo.update(r.id for r in batch)
                self._retry(outcome, batch, err.reason, None)
                outcome.released.extend(r.id for r in rest)
                return False
            self._fail(outcome, batch, err.reason)
            log.warning("outbox: message %d failed permanently: %s", head.id, err.reason)
            if err.destination_broken and team is not None:
                settings = await self._mark_push_broken(team[0], head, err, now)
                if settings is not None:
                    group.team = (team[0], settings)
                    return True  # the rows behind fail fast; other kinds (replies) still go
            if err.destination_broken:
                self._broken[head.dest_key] = (err.reason, now + timedelta(seconds=self.broken_ttl))
                self._fail(outcome, rest, f"destination broken: {err.reason}")
                group.broken.append((head.dest_key, f"destination broken: {err.reason}"))
                return False
            return True
        except Exception as err:  # a bug in a deliverer must not lose the message
            log.exception("outbox: unexpected error delivering message %d", head.id)
            self._retry(outcome, batch, f"unexpected {type(err).__name__}", None)
            outcome.released.extend(r.id for r in rest)
            return False
        outcome.sent.extend(r.id for r in batch)
        if len(batch) > 1:
            self.stats["merged"] += len(batch)
        return True

    async def _prepare_group(
        self, rows: list[ClaimedRow], outcome: Outcome
    ) -> tuple[Deliverer, dict[str, Any], RateLimit | None, str] | None:
        """The deliverer, (scoped) destination and rate limit of one group; None when the whole group
        is settled without sending (no deliverer, destination known broken, scope or limit failed)."""
        head = rows[0]
        deliverer = self.deliverers.get(head.platform)
        if deliverer is None:
            self._fail(outcome, rows, f"no deliverer configured for platform {head.platform!r}")
            return None
        marker = self._broken.get(head.dest_key)
        if marker is not None and marker[1] > self.clock():
            self._fail(outcome, rows, f"destination broken: {marker[0]}")
            return None
        destination = head.destination
        scope = getattr(deliverer, "scope_destination", None)
        if scope is not None:
            # A deliverer serving several tenants (WeCom corps) completes a destination queued without
            # its tenant from the row's organisation; rows of one dest_key share it.
            try:
                destination = await scope(head.id, destination)
            except Exception as err:
                log.exception("outbox: could not scope the destination of message %d", head.id)
                self._retry(outcome, [head], f"unexpected {type(err).__name__}", None)
                outcome.released.extend(r.id for r in rows[1:])
                return None
        try:
            return deliverer, destination, deliverer.rate_limit(destination), deliverer.limit_key(destination)
        except PermanentFailure as err:
            self._fail(outcome, rows, err.reason)
            return None

    async def _mark_push_broken(
        self, team_id: int, row: ClaimedRow, err: PermanentFailure, now: datetime
    ) -> dict[str, Any] | None:
        """Durable mark + one notice; None means "not the team's push", use the in-process skip."""
        try:
            return await self.broken_pushes.mark(team_id, row.platform, row.destination, err, now)
        except Exception:
            log.exception("outbox: could not record broken destination for message %d", row.id)
            return None

    def _fail(self, outcome: Outcome, rows: list[ClaimedRow], reason: str) -> None:
        self.stats["failed"] += len(rows)
        outcome.failures.extend(Failure(r.id, reason) for r in rows)

    def _retry(self, outcome: Outcome, rows: list[ClaimedRow], reason: str, after: float | None) -> None:
        """Back off `rows` (one, or the parts of a merged message) together, by the first one's attempts."""
        delay = self.backoff(rows[0].attempts + 1, after)
        for row in rows:
            attempts = row.attempts + 1
            if attempts >= self.max_attempts:
                self.stats["failed"] += 1
                outcome.failures.append(Failure(row.id, f"gave up after {attempts} attempts: {reason}"))
                log.warning("outbox: message %d gave up after %d attempts: %s", row.id, attempts, reason)
                continue
            self.stats["retried"] += 1
            outcome.retries.append(Retry(row.id, self.clock() + timedelta(seconds=delay), reason))

    def backoff(self, attempts: int, after: float | None) -> float:
        """Exponential backoff with jitter, never earlier than the platform asked (`after`)."""
        exp = min(self.backoff_cap, self.backoff_base * 2 ** (attempts - 1))
        delay = exp * (0.5 + 0.5 * self.rng())
        if after is not None:
            delay = max(delay, after * (1.0 + 0.1 * self.rng()))
        return delay
