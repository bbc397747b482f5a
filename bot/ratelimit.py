"""Sliding-window rate limits driven by an injectable clock, and when a destination counts as saturated.

Why not `aiolimiter`: it reads the event loop's clock and *waits* for capacity. The outbox worker never
waits inside a send loop — when a destination is out of capacity it hands the rows back with the time the
next slot frees, so tests can drive a minute of platform time without sleeping.

Two windows with one interface (`SendWindow.update`): `SlidingWindowLimiter` lives in one process (SQLite
means one bot process); storage.send_windows.SendWindows keeps the window in PostgreSQL, so that every
replica counts the others' sends. What to do with a window is `plan_slots`'s decision, the same for both.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class SendWindow(Protocol):
    async def update(
        self, key: str, now: float, window: float, change: Callable[[list[float]], list[float] | None]
    ) -> bool:
        """Replace `key`'s send times by `change(the times still inside the window)`, unless it says None.

        Atomic: nothing else changes the window between the read `change` sees and the write. True when
        written. `change` may be called more than once (another replica wrote meanwhile); the last call wins.
        """
        ...


@dataclass(frozen=True)
class Slots:
    """`plan_slots`'s answer: send `count` messages now, or none and ask again in `wait` seconds. `merge`:
    the destination is saturated, so the (single) message of this slot carries every waiting reply that fits."""

    count: int
    merge: bool = False
    wait: float = 0.0


def plan_slots(sent: Sequence[float], count: int, window: float, now: float, *, want: int, merge: bool) -> Slots:
    """How many of `want` messages to a target may go now, given the times of its sends inside `window`.

    Without merging: as many as there are free slots, else wait for the oldest send to leave the window.
    With merging, the last quarter of the window's slots is a reserve: once only the reserve is left the
    target is *saturated* — a slot carries a merged message and is taken at most every `window / count`
    seconds, so the replies arriving meanwhile gather into it. A burst of 60 answers then reaches a group
    as 15 single messages and a few merged ones within seconds, instead of 20 and a minute's silence.
    """
    live = sorted(sent)
    free = count - len(live)
    reserve = count // 4 if merge else 0
    if free > reserve:
        return Slots(min(want, free - reserve))
    due = now
    if free <= 0:
        due = live[len(live) - count] + window
    if merge and live:
        due = max(due, live[-1] + window / count)
    if due <= now:
        return Slots(1, merge=True)
    return Slots(0, merge=merge, wait=max(due - now, 0.001))


def retimed(sent: Sequence[float], at: float, granted: int, used: Sequence[float]) -> list[float]:
    """`sent` with the `granted` slots taken at `at` replaced by the times they were used (maybe fewer).

    Slots are taken for a destination's run of messages at once, before the first is sent; when the run
    took long (slow platform) or stopped early, its sends are recorded as they happened, so the window
    neither frees too soon nor keeps slots nobody used.
    """
    out = list(sent)
    for _ in range(granted):
        if at in out:
            out.remove(at)
    return sorted([*out, *used])


class SlidingWindowLimiter:
    """At most `count` events per `per_seconds` per key; `margin` widens the window for network skew.

    The platform counts a message when it *receives* it, we count it when we *send* it; without a margin
    a request that travels faster than the one 60 s before it would be seen as the 21st in a minute.
    """

    # Every this many acquisitions, keys with nothing inside the longest window seen are dropped: a
    # long-running service meets thousands of destinations (groups, reps), most of them rarely.
    PRUNE_EVERY = 1000

    def __init__(self, margin: float = 1.0) -> None:
        self.margin = margin
        self._events: dict[str, deque[float]] = {}
        self._longest = 0.0
        self._calls = 0

    def try_acquire(self, key: str, count: int, per_seconds: float, now: float) -> float:
        """Take a slot and return 0.0, or take nothing and return the seconds until one frees."""
        window = per_seconds + self.margin
        events = self._live(key, window, now)
        slots = plan_slots(events, count, window, now, want=1, merge=False)
        if slots.count:
            events.append(now)
        return slots.wait

    async def update(
        self, key: str, now: float, window: float, change: Callable[[list[float]], list[float] | None]
    ) -> bool:
        """`SendWindow.update` in this process: nothing awaits between reading the window and writing it."""
        new = change(list(self._live(key, window, now)))
        if new is None:
            return False
        self._events[key] = deque(sorted(new))
        return True

    def __len__(self) -> int:
        return len(self._events)

    def _live(self, key: str, window: float, now: float) -> deque[float]:
        self._longest = max(self._longest, window)
        self._calls += 1
        if self._calls % self.PRUNE_EVERY == 0:
            self._prune(now)
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - window:
            events.popleft()
        return events

    def _prune(self, now: float) -> None:
        stale = [k for k, events in self._events.items() if not events or events[-1] <= now - self._longest]
        for key in stale:
            del self._events[key]
