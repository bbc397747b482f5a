"""What the outbox worker's next pass claims: the destinations it was woken for, or everything due.

On PostgreSQL a claim of everything due reads the outbox's partial indexes, where a settled row leaves
its entries, dead, until VACUUM; with the plans a young table gets (no statistics yet) it read every row
settled since, on the path of every reply (PostgreSQL's time per claim ~2 ms after 3,000 replies in the
peer bench, ~5 ms after 30,000 in bench/outbox_claim). A commit's wake needs only the destinations it
queued for, and so does the wake of a pass that held destinations another pass could not take
meanwhile: those claim by destination (storage.outbox_queue, `dest_keys`), reading only their entries.

Everything else due — retries and rate-limited rows falling due, leases of a crashed worker, rows another
replica queued and did not send — is found by a sweep: a pass a timer starts, a pass that starts when the
worker knows something is due (`due_now`), and at least one pass every `every` seconds while wakes keep
coming, so a busy worker never stops looking.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

# A pass still waiting on the platform after this long lets the next one start beside it.
OVERLAP_AFTER_S = 0.02


class Wakes:
    """The destinations woken for since the last pass started, and whether it must sweep instead."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._keys: set[str] = set()
        self._sweep = True  # the first pass sweeps
        self._last_sweep = float("-inf")

    def keys(self, keys: Iterable[str]) -> None:
        """Rows of these destinations may be claimable now (a commit queued them, a pass let go of them)."""
        self._keys.update(keys)

    def sweep(self) -> None:
        """Anything may be claimable now."""
        self._sweep = True

    def take(self, woken: bool, due_now: bool, now: float) -> set[str] | None:
        """For a pass starting at `now` (seconds, any monotonic clock): the destinations to claim, or None
        to sweep. `woken`: a wake started it, not a timer; `due_now`: something is known to be due."""
        keys, self._keys = self._keys, set()
        if woken and not self._sweep and not due_now and now - self._last_sweep < self.every:
            return keys  # empty when a pass before took what this wake was for
        self._sweep = False
        self._last_sweep = now
        return None


async def next_wake(event: asyncio.Event, current: asyncio.Task[float], passes: set[asyncio.Task[float]],
                    last_pass_at: float, max_passes: int) -> bool:
    """Wait for a wake (True) or for the time `current` says the next row falls due (False).

    The next pass waits for the last one while that is quick (its rows join the next claim); once the
    last has waited on the platform for OVERLAP_AFTER_S, it starts beside it (up to `max_passes` at once)."""
    wake = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((wake, current), return_when=asyncio.FIRST_COMPLETED)
        if not wake.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(wake), current.result())
        if not wake.done():
            return False
        loop = asyncio.get_running_loop()
        while passes:
            remaining = last_pass_at + OVERLAP_AFTER_S - loop.time()
            if len(passes) < max_passes and remaining <= 0:
                break
            timeout = remaining if len(passes) < max_passes else None
            await asyncio.wait(passes, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return True
    finally:
        wake.cancel()
