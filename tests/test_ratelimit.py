"""The per-destination rate limiter the outbox uses (20 messages a minute per robot)."""

from __future__ import annotations

from bot.ratelimit import SlidingWindowLimiter


def test_the_21st_message_in_a_minute_waits_for_the_first_to_leave_the_window() -> None:
    limiter = SlidingWindowLimiter(margin=1.0)
    assert all(limiter.try_acquire("robot", 20, 60.0, float(t)) == 0.0 for t in range(20))
    assert limiter.try_acquire("robot", 20, 60.0, 30.0) == 31.0  # the one sent at 0 leaves at 61
    assert limiter.try_acquire("other-robot", 20, 60.0, 30.0) == 0.0
    assert limiter.try_acquire("robot", 20, 60.0, 61.0) == 0.0


def test_destinations_quiet_for_a_window_are_forgotten() -> None:
    """A service that has pushed to thousands of groups does not keep a window for each forever."""
    limiter = SlidingWindowLimiter(margin=1.0)
    for n in range(3000):
        limiter.try_acquire(f"group-{n}", 20, 60.0, float(n) / 100)  # 3,000 groups within 30 s
    assert len(limiter) == 3000
    for n in range(SlidingWindowLimiter.PRUNE_EVERY):
        limiter.try_acquire("busy-group", 20, 60.0, 100.0 + n / 1000)  # a minute and more later
    assert len(limiter) == 1
    assert limiter.try_acquire("busy-group", 20, 60.0, 101.0) > 0  # the busy one's window is intact
