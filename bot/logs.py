"""Log lines an operator can trust: one record is one line, as text or as JSON, with the message's context.

`SALESBOT_LOG_FORMAT=json` writes one JSON object per line (time, level, logger, message and, where known,
platform, org, team, msg_id, error_id); `text` keeps the classic `time LEVEL logger message` line.

The context travels in a contextvar: the HTTP middleware sets the platform of a callback, the router the
message it is handling (`log_context`), and `ContextFilter` copies it onto every record the process's
handler emits — so an adapter's log line needs no extra arguments to say which message it was about.

Much of what gets logged comes from outside (a `msgId`, a header, a chat title), so `SafeFormatter` escapes
control characters in both formats: a value carrying "\\n" or an ANSI escape cannot start a forged line or
repaint the operator's terminal. A traceback keeps its line breaks, but every line of it is indented, so a
line that starts at column 0 is always the start of a record.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO, Any, Literal

LogFormat = Literal["text", "json"]
CONTEXT_FIELDS = ("platform", "org", "team", "msg_id", "error_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

_NO_CONTEXT: Mapping[str, str] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "salesbot_log_context", default=_NO_CONTEXT
)

# C0 controls, DEL, C1 controls (NEL among them) and the Unicode line/paragraph separators: everything a
# terminal or a log viewer may take as a line break or an escape sequence.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_OURS = "_salesbot_handler"


@contextlib.contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Add `values` (None ones skipped) to the context of every record logged inside the block."""
    merged = {**_context.get(), **{k: str(v) for k, v in values.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def _escape_char(found: re.Match[str]) -> str:
    char = found.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def escape_control(text: str) -> str:
    """`text` with every control character written as an escape (`\\n`, `\\x1b`, `\\u2028`)."""
    return _CONTROL.sub(_escape_char, text)


def _escape_keeping_lines(text: str) -> str:
    return _CONTROL_BUT_NEWLINE.sub(_escape_char, text)


class ContextFilter(logging.Filter):
    """Copies the current log context onto the record (a field the call passed in `extra` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class SafeFormatter(logging.Formatter):
    """The one formatter of both formats; escapes what it writes (see the module docstring)."""

    def __init__(self, fmt: LogFormat = "text") -> None:
        super().__init__(TEXT_FORMAT)
        self.json_lines = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        message = escape_control(record.getMessage())
        detail = self._detail(record)
        if self.json_lines:
            entry: dict[str, Any] = {
                "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname,
                "logger": record.name,
                "message": message,
            }
            for key in CONTEXT_FIELDS:
                value = getattr(record, key, None)
                if value is not None:
                    entry[key] = escape_control(str(value))
            if detail:
                entry["exc_info"] = detail
            return json.dumps(entry, ensure_ascii=False)
        line = f"{self.formatTime(record)} {record.levelname} {escape_control(record.name)} {message}"
        if detail:
            line += "\n" + "\n".join("    " + part for part in detail.splitlines())
        return line

    def _detail(self, record: logging.LogRecord) -> str:
        parts: list[str] = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return _escape_keeping_lines("\n".join(parts))


def build_handler(fmt: LogFormat = "text", stream: IO[str] | None = None) -> logging.Handler:
    """The process's log handler: context attached, escaped, in `fmt`, on `stream` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(SafeFormatter(fmt))
    handler.addFilter(ContextFilter())
    return handler


def configure_logging(level: int | str, fmt: LogFormat = "text", stream: IO[str] | None = None) -> None:
    """Send every record at or above `level` to the process's handler (one: a second call replaces it).

    Handlers someone else put on the root logger (a test runner's capture) are left where they are.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    handler = build_handler(fmt, stream)
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(level)


def remove_logging() -> None:
    """Take `configure_logging`'s handler off the root logger: a caller that ran the CLI in-process (a
    test) must not leave later records going to a stream it has closed."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
