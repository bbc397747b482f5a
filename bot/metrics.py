"""The operator's numbers: what `GET /metrics` shows, in Prometheus' text format (prometheus-client).

Everything is counted in a few central places — the app's middleware (callbacks), `Router.handle` and its
batch (commands), the outbox worker where a batch's rows are settled (deliveries), the scheduler's tick
(firings) — and what lives in the database (outbox backlog, inbound lag) is read when `/metrics` is
scraped, with one aggregate query (`storage.health`), so it is the same on every replica.

Each app has its own `CollectorRegistry`: tests build many apps in one process, and with the global
registry the second app's metrics would collide with the first's (and their numbers would mix). The
flip side is that `serve --workers N` has N registries: each worker process serves its own `/metrics`
(the kernel picks which one answers a scrape), and summing them across processes is left to Prometheus
— scrape each worker, or run one worker per replica.

prometheus-client is imported when `Metrics` is built (by the app), never by importing this module: the
router imports it for `note_duplicate`, and `salesbot chat` has no metrics.
"""

from __future__ import annotations

import contextvars
from collections import Counter as CountOf
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.outbox_queue import Outcome

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds; commands take milliseconds, a slow database or a big import seconds.
COMMAND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BACKLOG_STATUSES = ("pending", "sending", "failed")


@dataclass
class CallbackNote:
    """What a platform callback turned out to be, beyond its HTTP status (a re-delivery answers 200 too)."""

    duplicate: bool = False


_callback: contextvars.ContextVar[CallbackNote | None] = contextvars.ContextVar("salesbot_callback", default=None)


def start_callback() -> tuple[CallbackNote, contextvars.Token[CallbackNote | None]]:
    """Open the note of the callback being served (the middleware); `end_callback` closes it."""
    note = CallbackNote()
    return note, _callback.set(note)


def end_callback(token: contextvars.Token[CallbackNote | None]) -> None:
    _callback.reset(token)


def note_duplicate() -> None:
    """The message being received was seen before: its callback counts as `duplicate`, not `accepted`.

    A no-op outside a callback (a queue worker, a long connection, the console).
    """
    note = _callback.get()
    if note is not None:
        note.duplicate = True


def callback_outcome(status: int, note: CallbackNote) -> str:
    if status >= 500:
        return "error"
    if status >= 400:
        return "rejected"
    return "duplicate" if note.duplicate else "accepted"


class Metrics:
    """One app's counters, histograms and scrape-time gauges, in a registry of its own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        from prometheus_client.gc_collector import GCCollector
        from prometheus_client.process_collector import ProcessCollector

        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)  # resident memory, CPU seconds, open files of this worker
        GCCollector(registry=registry)
        self.callbacks = Counter(
            "salesbot_callbacks", "Platform HTTP callbacks by outcome (accepted, duplicate, rejected, error).",
            ["platform", "route", "outcome"], registry=registry,
        )
        self.commands = Counter(
            "salesbot_commands", "Messages the router finished, by outcome (ok, refused, error, duplicate).",
            ["command", "outcome"], registry=registry,
        )
        self.command_seconds = Histogram(
            "salesbot_command_seconds", "From the router taking a message to its transaction's commit.",
            ["command"], buckets=COMMAND_BUCKETS, registry=registry,
        )
        self.outbox_sent = Counter("salesbot_outbox_sent", "Outbox rows delivered.", ["platform"], registry=registry)
        self.outbox_failed = Counter(
            "salesbot_outbox_failed", "Outbox rows given up (permanent failure, broken destination, attempts used up).",
            ["platform"], registry=registry,
        )
        self.outbox_retries = Counter(
            "salesbot_outbox_retries", "Deliveries that failed and were put off for another attempt.",
            ["platform"], registry=registry,
        )
        self.outbox_deferred = Counter(
            "salesbot_outbox_deferred", "Rows put off because their destination's rate limit was full (no attempt).",
            ["platform"], registry=registry,
        )
        self.delivery_seconds = Histogram(
            "salesbot_outbox_delivery_seconds", "How long the platform took to accept one message.",
            ["platform"], buckets=DELIVERY_BUCKETS, registry=registry,
        )
        self.firings = Counter(
            "salesbot_scheduler_firings", "Scheduled slots handled by this process, by job and status.",
            ["job", "status"], registry=registry,
        )
        self.outbox_rows = Gauge(
            "salesbot_outbox_rows", "Outbox rows not sent (yet), by platform and status; read from the database.",
            ["platform", "status"], registry=registry,
        )
        self.inbound_lag = Gauge(
            "salesbot_inbound_lag_seconds",
            "Age of the oldest recorded-but-unprocessed inbound message (0: none waiting); read from the database.",
            ["platform"], registry=registry,
        )
        self._backlog_labels: set[tuple[str, str]] = set()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._lag_labels: set[str] = set()

    # ----------------------------------------------------------------- events
    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once: counted several times a message, prometheus_client
        validates the labels and takes a lock on every call."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def callback(self, platform: str, route: str, outcome: str) -> None:
        self._child(self.callbacks, platform, route, outcome).inc()

    def command(self, command: str, outcome: str, seconds: float) -> None:
        self._child(self.commands, command, outcome).inc()
        self._child(self.command_seconds, command).observe(seconds)

    def delivered(self, platform: str, seconds: float) -> None:
        self._child(self.delivery_seconds, platform).observe(seconds)

    def outbox_settled(
        self, platforms: Mapping[int, str], outcome: Outcome, destination_failures: Iterable[tuple[str, int]]
    ) -> None:
        """Count a settled batch (`storage.outbox_queue.Outcome`); `platforms` maps its row ids to platforms,
        `destination_failures` are (platform, rows failed) of the destinations failed whole."""
        for platform, sent in CountOf(platforms[row_id] for row_id in outcome.sent).items():
            self._child(self.outbox_sent, platform).inc(sent)
        for failure in outcome.failures:
            self._child(self.outbox_failed, platforms[failure.id]).inc()
        for retry in outcome.retries:
            self._child(self.outbox_retries if retry.count_attempt else self.outbox_deferred, platforms[retry.id]).inc()
        for platform, count in destination_failures:
            if count:
                self._child(self.outbox_failed, platform).inc(count)

    def firing(self, job: str, status: str) -> None:
        self.firings.labels(job, status).inc()

    # ----------------------------------------------------------------- scrape
    def set_backlog(self, outbox: Mapping[tuple[str, str], int], oldest_inbound: Mapping[str, datetime],
                    now: datetime) -> None:
        """The database's numbers as of this scrape; a series that was shown before reads 0 once it is empty."""
        seen = set(outbox) | {(p, s) for p, _ in self._backlog_labels for s in BACKLOG_STATUSES}
        for platform, status in seen:
            self.outbox_rows.labels(platform, status).set(outbox.get((platform, status), 0))
        self._backlog_labels = seen
        for platform in self._lag_labels | set(oldest_inbound):
            oldest = oldest_inbound.get(platform)
            self.inbound_lag.labels(platform).set(max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
        self._lag_labels |= set(oldest_inbound)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
