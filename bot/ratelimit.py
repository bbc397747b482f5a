"""A sliding-window rate limiter driven by an injectable clock.

Why not `aiolimiter`: it reads the event loop's clock and *waits* for capacity. The outbox worker never
waits inside a send loop — when a destination is out of capacity it hands the rows back with the time the
next slot frees, so tests can drive a minute of platform time without sleeping.

The limiter lives in one process. Several replicas sharing a robot each keep their own window; see the
README's delivery guarantees.
"""

from __future__ import annotations

from collections import deque


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
        self._longest = max(self._longest, window)
        self._calls += 1
        if self._calls % self.PRUNE_EVERY == 0:
            self._prune(now)
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - window:
            events.popleft()
        if len(events) < count:
            events.append(now)
            return 0.0
        return max(events[len(events) - count] + window - now, 0.001)

    def forget(self, key: str) -> None:
        self._events.pop(key, None)

    def __len__(self) -> int:
        return len(self._events)

    def _prune(self, now: float) -> None:
        stale = [k for k, events in self._events.items() if not events or events[-1] <= now - self._longest]
        for key in stale:
            del self._events[key]
