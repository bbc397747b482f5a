"""Logs an operator can trust: JSON lines with the message's context, the configured level, no forged lines."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from bot.logs import LogFormat, SafeFormatter, build_handler
from storage.database import Database
from tests.dingtalk_support import dingtalk_settings, running_bot
from tests.fakes.dingtalk import FakeDingTalk
from tests.test_cli_and_serve import run_cli

RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


@pytest.fixture
async def ding() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk() as fake:
        yield fake


@pytest.fixture
def salesbot_log() -> Iterator[tuple[io.StringIO, Callable[[LogFormat], None]]]:
    """What the process's handler (in the format given to `install`) writes for the `salesbot` loggers, at DEBUG."""
    stream = io.StringIO()
    logger = logging.getLogger("salesbot")
    level = logger.level
    handlers: list[logging.Handler] = []
    logger.setLevel(logging.DEBUG)

    def install(fmt: LogFormat) -> None:
        handler = build_handler(fmt, stream)
        handlers.append(handler)
        logger.addHandler(handler)

    yield stream, install
    for handler in handlers:
        logger.removeHandler(handler)
    logger.setLevel(level)


async def test_json_logs_are_one_object_a_line_with_the_commands_msg_id(
    db: Database, ding: FakeDingTalk, salesbot_log  # type: ignore[no-untyped-def]
) -> None:
    stream, install = salesbot_log
    install("json")
    async with running_bot(dingtalk_settings(ding), db) as bot:
        callback = ding.robot_text_callback("认领 腾讯科技", "zhangsan", "张三", msg_id="m-json")
        assert (await bot.post_robot(*callback))[0] == 200
        forged, body = ding.robot_text_callback("认领 字节跳动", "zhangsan", "张三")
        forged["sign"] = "AAAA"
        assert (await bot.post_robot(forged, body))[0] == 401
        await bot.settle()
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    [done] = [e for e in entries if e["logger"] == "salesbot.router" and e.get("msg_id") == "m-json"]
    assert done["level"] == "DEBUG" and done["message"].startswith("command claim ok in ")
    assert (done["platform"], done["team"], done["org"]) == ("dingtalk", "销售一组", ding.corp_id)
    # The middleware gives an adapter's own line about a callback its platform, with no argument for it.
    [rejected] = [e for e in entries if "rejected" in e["message"]]
    assert rejected["level"] == "WARNING" and rejected["platform"] == "dingtalk" and "msg_id" not in rejected


async def test_a_msg_id_with_a_newline_and_an_ansi_escape_does_not_forge_a_line(
    db: Database, ding: FakeDingTalk, salesbot_log  # type: ignore[no-untyped-def]
) -> None:
    stream, install = salesbot_log
    install("text")
    evil = "x\n2026-01-01 00:00:00,000 ERROR salesbot.router forged \x1b[31mred\x1b[0m\u2028"
    async with running_bot(dingtalk_settings(ding), db) as bot:
        callback = ding.robot_text_callback("认领 腾讯科技", "zhangsan", "张三", msg_id=evil)
        for _ in range(2):  # the second is a re-delivery, logged with its msg_id
            assert (await bot.post_robot(*callback))[0] == 200
        await bot.settle()
    text = stream.getvalue()
    assert "\x1b" not in text and "\u2028" not in text
    lines = text.splitlines()
    assert lines and all(RECORD_START.match(line) for line in lines), lines
    assert not [line for line in lines if line.split(" ", 3)[2:3] == ["ERROR"]]
    [duplicate] = [line for line in lines if "duplicate delivery acknowledged" in line]
    escaped = r"x\n2026-01-01 00:00:00,000 ERROR salesbot.router forged \x1b[31mred\x1b[0m\u2028"
    assert duplicate.endswith("msg_id=" + escaped)


def test_a_traceback_keeps_its_lines_but_every_one_is_indented() -> None:
    record = logging.LogRecord("salesbot.x", logging.ERROR, __file__, 1, "failed %s", ("a\nb",), None)
    try:
        raise ValueError("bad\n2026-01-01 00:00:00,000 INFO forged\x1b[2J")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    lines = SafeFormatter("text").format(record).splitlines()
    assert lines[0].endswith(r"failed a\nb") and RECORD_START.match(lines[0])
    assert all(line.startswith("    ") for line in lines[1:]) and "\x1b" not in "".join(lines)
    assert any("ValueError: bad" in line for line in lines[1:])
    entry = json.loads(SafeFormatter("json").format(record))
    assert entry["message"] == r"failed a\nb" and "ValueError: bad" in entry["exc_info"]


def test_log_level_and_format_settings_are_honoured(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    shown = run_cli("db", "upgrade", "--db", url, env={"SALESBOT_LOG_FORMAT": "json"})
    assert shown.returncode == 0, shown.stderr
    entries = [json.loads(line) for line in shown.stderr.splitlines()]
    assert any(e["level"] == "INFO" and e["logger"].startswith("alembic") for e in entries)
    hidden = run_cli("db", "downgrade", "base", "--db", url, env={"SALESBOT_LOG_LEVEL": "WARNING"})
    assert hidden.returncode == 0 and hidden.stderr == "", hidden.stderr
    default = run_cli("db", "upgrade", "--db", url)
    assert default.returncode == 0 and " INFO alembic" in default.stderr
    assert all(RECORD_START.match(line) for line in default.stderr.splitlines())
    wrong = run_cli("config", "check", env={"SALESBOT_LOG_LEVEL": "loud"})
    assert wrong.returncode == 2 and "SALESBOT_LOG_LEVEL" in wrong.stderr
