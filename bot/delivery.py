"""The contract between the outbox and the platforms that deliver its messages.

An outbox row holds a `destination` (a small JSON dict an adapter understands, always with `kind`)
and a neutral `body` (`OutgoingMessage.to_json()`). At send time the worker hands both to the
`Deliverer` registered for the row's platform. A deliverer either returns (delivered), raises
`RetryLater` (rate limit, timeout, 5xx — the worker backs off), or raises `PermanentFailure`
(invalid key, forbidden, too long — marked failed, never retried forever).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

# Re-exported: the adapters and the outbox import the body type from here, next to the deliverer contract.
from bot.messages import OutgoingMessage


class DeliveryError(Exception):
    """Base of what a deliverer may raise. `reason` never contains secrets (keys, tokens)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryLater(DeliveryError):
    """Transient: try again, no earlier than `after` seconds from now when the platform says so."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class PermanentFailure(DeliveryError):
    """Will never succeed as is. `destination_broken` marks the whole destination (e.g. a webhook
    key that was removed) so admins are told once and later messages to it fail fast. `category` is the
    admin-facing Chinese name of what broke (e.g. "加签不匹配"); the notice to admins quotes it."""

    def __init__(self, reason: str, *, destination_broken: bool = False, category: str | None = None) -> None:
        super().__init__(reason)
        self.destination_broken = destination_broken
        self.category = category


@dataclass(frozen=True)
class RateLimit:
    """At most `count` messages per `per_seconds` to one limit key (e.g. 20 per 60 s per robot)."""

    count: int
    per_seconds: float


class Deliverer(Protocol):
    platform: str

    def limit_key(self, destination: dict[str, Any]) -> str:
        """Messages sharing a key share a rate limit (one robot, one app)."""
        ...

    def rate_limit(self, destination: dict[str, Any]) -> RateLimit | None: ...

    def max_bytes(self, destination: dict[str, Any]) -> int:
        """Byte limit of one message body on this destination; longer bodies are split at enqueue."""
        ...

    async def deliver(self, destination: dict[str, Any], message: OutgoingMessage) -> None: ...


def split_text(text: str, max_bytes: int) -> list[str]:
    """Split at line boundaries so that each part encodes to at most `max_bytes` UTF-8 bytes.

    A single line longer than the limit is cut at a character boundary — never inside a UTF-8
    sequence, which platforms reject or render as garbage.
    """
    if len(text.encode("utf-8")) <= max_bytes:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = line if not current else current + "\n" + line
        if len(candidate.encode("utf-8")) <= max_bytes:
            current = candidate
            continue
        if current:
            parts.append(current)
        while len(line.encode("utf-8")) > max_bytes:
            cut = _cut_at_bytes(line, max_bytes)
            parts.append(line[:cut])
            line = line[cut:]
        current = line
    if current:
        parts.append(current)
    return parts


def _cut_at_bytes(line: str, max_bytes: int) -> int:
    total = 0
    for index, char in enumerate(line):
        total += len(char.encode("utf-8"))
        if total > max_bytes:
            return max(index, 1)
    return len(line)


class DeliverersByKind:
    """One platform, several kinds of destination (webhook, app message, group chat) — picks by `kind`."""

    def __init__(self, platform: str, by_kind: dict[str, Deliverer]) -> None:
        self.platform = platform
        self.by_kind = by_kind

    def _pick(self, destination: dict[str, Any]) -> Deliverer:
        deliverer = self.by_kind.get(str(destination.get("kind")))
        if deliverer is None:
            raise PermanentFailure(f"no deliverer for {self.platform} destination kind {destination.get('kind')!r}")
        return deliverer

    def limit_key(self, destination: dict[str, Any]) -> str:
        return self._pick(destination).limit_key(destination)

    def rate_limit(self, destination: dict[str, Any]) -> RateLimit | None:
        return self._pick(destination).rate_limit(destination)

    def max_bytes(self, destination: dict[str, Any]) -> int:
        return self._pick(destination).max_bytes(destination)

    async def deliver(self, destination: dict[str, Any], message: OutgoingMessage) -> None:
        await self._pick(destination).deliver(destination, message)
