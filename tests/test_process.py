"""The process: what a start-up imports, and how `salesbot serve` stops on a signal."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp

from storage import migrate
from tests.fakes.dingtalk import FakeDingTalk
from tests.server_support import wait_healthz

ROOT = Path(__file__).resolve().parent.parent
# Heavy packages a start-up on an up-to-date database must not load: they serve migrations, sheets and the
# web board's pages (`serve` only).
NOT_AT_START = ("alembic", "mako", "openpyxl", "jinja2")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESBOT_")}
    env.update(PYTHONPATH=str(ROOT), **extra)
    return env


def test_the_head_revision_constant_is_alembics_head() -> None:
    assert migrate.head_revision() == migrate.HEAD_REVISION, (
        "a new migration: set storage.migrate.HEAD_REVISION to its revision id"
    )


def test_chat_on_a_new_database_and_on_one_at_head_imports_no_alembic_and_no_openpyxl(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/chat.db"
    probe = (
        "import sys\n"
        "from bot.cli import main\n"
        f"code = main(['chat', '--db', {url!r}])\n"
        f"print('LOADED', [m for m in {NOT_AT_START!r} if m in sys.modules], file=sys.stderr)\n"
        "sys.exit(code)\n"
    )

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", probe], input="帮助\n", capture_output=True, text=True,
                              env=_env(), cwd=ROOT, timeout=60)

    first = run()  # a new file: created at head in one step (storage.migrate.create_at_head)
    assert first.returncode == 0, first.stderr
    assert "LOADED []" in first.stderr
    again = run()
    assert again.returncode == 0, again.stderr
    assert "bot> " in again.stdout
    assert "LOADED []" in again.stderr


async def test_sigterm_lets_the_command_in_flight_and_its_outbox_row_commit_then_exits_0(tmp_path: Path) -> None:
    """A DingTalk callback is in flight (its acknowledgement waits for SQLite's write lock, held here)
    when SIGTERM arrives: the process stops accepting, finishes it — the record, the command, the
    reply in the outbox — logs one line and exits 0."""
    db_file = tmp_path / "serve.db"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with FakeDingTalk() as ding:
        env = _env(SALESBOT_DATABASE_URL=f"sqlite:///{db_file}", SALESBOT_DINGTALK_APP_KEY=ding.app_key,
                   SALESBOT_DINGTALK_APP_SECRET=ding.app_secret, SALESBOT_DINGTALK_OAPI_BASE=ding.oapi_base,
                   SALESBOT_DINGTALK_API_BASE=ding.api_base)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
            env=env, cwd=ROOT, stderr=asyncio.subprocess.PIPE)
        assert proc.stderr is not None
        try:
            await wait_healthz(port, exited=lambda: proc.returncode is not None)
            await asyncio.sleep(0.5)  # start-up's own writes (outbox lease reclaim) are done
            lock = sqlite3.connect(db_file, isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")
            headers, body = ding.robot_text_callback("认领 北京华为技术有限公司", "u1", "张三")
            async with aiohttp.ClientSession() as http:
                request = asyncio.ensure_future(http.post(f"http://127.0.0.1:{port}/dingtalk/robot",
                                                          headers=headers, data=body))
                await asyncio.sleep(0.5)
                assert not request.done()
                proc.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.5)
                assert proc.returncode is None  # waiting for the callback, not dead
                lock.execute("COMMIT")
                lock.close()
                async with await request as resp:
                    assert resp.status == 200
            code = await asyncio.wait_for(proc.wait(), 15)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        stderr = (await proc.stderr.read()).decode()
    assert code == 0, stderr
    stops = re.findall(r"salesbot stopped: SIGTERM, (\d+) in-flight finished", stderr)
    assert stops == ["1"], stderr
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("SELECT name FROM customers").fetchall() == [("北京华为技术有限公司",)]
        assert conn.execute("SELECT status FROM inbound_messages WHERE platform = 'dingtalk'").fetchall() == [("done",)]
        assert len(conn.execute("SELECT id FROM outbox WHERE platform = 'dingtalk'").fetchall()) == 1
