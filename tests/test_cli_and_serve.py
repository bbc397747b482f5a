"""The command line a manager types on day one, and the HTTP service's health check."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import build_app
from bot.settings import ConfigError, load_settings
from storage.database import Database
from tests.server_support import AppServer
from tests.tcp_proxy import proxied_database

PG_URL = os.environ.get("SALESBOT_TEST_PG_URL")


def run_cli(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SALESBOT_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
    )


def test_the_readme_console_example_refuses_the_second_claim(tmp_path: Path) -> None:
    lines = "认领 北京华为技术有限公司\n@李四: 认领 华为技术\n跟进 华为 已约下周拜访 阶段:初访 金额:50万 下次:周五\n"
    result = run_cli("chat", "--db", f"sqlite:///{tmp_path}/demo.db", "--user", "张三", stdin=lines)
    assert result.returncode == 0, result.stderr
    replies = [line for line in result.stdout.splitlines() if line.startswith("bot> ")]
    assert len(replies) == 3
    assert "认领成功" in replies[0]
    assert "撞单" in replies[1] and "@张三" in replies[1]
    assert "已记录" in replies[2]
    assert "Traceback" not in result.stderr


def test_chat_uses_the_embedded_sqlite_default_in_the_current_directory(tmp_path: Path) -> None:
    result = run_cli("chat", stdin="帮助\n", cwd=tmp_path, env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert result.returncode == 0, result.stderr
    assert "命令一览" in result.stdout
    assert (tmp_path / "salesbot.db").exists()


def test_config_check_masks_secrets() -> None:
    env = {
        "SALESBOT_DATABASE_URL": "postgresql://bot:hunter2@db.example/sales",
        "SALESBOT_DINGTALK_APP_KEY": "dingkey",
        "SALESBOT_DINGTALK_APP_SECRET": "very-secret-value",
    }
    result = run_cli("config", "check", env=env)
    assert result.returncode == 0, result.stderr
    assert "very-secret-value" not in result.stdout and "hunter2" not in result.stdout
    assert "dingkey" in result.stdout


def test_a_wrong_setting_is_named_at_start() -> None:
    with pytest.raises(ConfigError, match="SALESBOT_WECOM_AIBOT_AES_KEY"):
        load_settings({"SALESBOT_WECOM_AIBOT_TOKEN": "t", "SALESBOT_WECOM_AIBOT_AES_KEY": "short"})
    with pytest.raises(ConfigError, match="SALESBOT_WECOM_AIBOT_AES_KEY"):
        load_settings({"SALESBOT_WECOM_AIBOT_TOKEN": "t"})
    with pytest.raises(ConfigError, match="SALESBOT_PORT"):
        load_settings({"SALESBOT_PORT": "eighty"})
    result = run_cli("chat", "--db", "mysql://x@y/z", stdin="")
    assert result.returncode == 2 and "不支持的数据库" in result.stderr and "Traceback" not in result.stderr


def test_a_toml_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "salesbot.toml"
    config.write_text('port = 9000\nadmins = "a,b"\n[dingtalk]\napp_key = "k"\napp_secret = "s"\n', encoding="utf-8")
    settings = load_settings({"SALESBOT_PORT": "9100"}, config_file=config)
    assert settings.port == 9100 and settings.admins == ("a", "b") and settings.dingtalk_app_key == "k"


@pytest.mark.skipif(not PG_URL, reason="needs SALESBOT_TEST_PG_URL")
def test_an_unmigrated_postgresql_database_is_refused_with_the_command_to_run() -> None:
    import asyncio
    import uuid

    from sqlalchemy import text

    from storage.engine import create_engine

    name = f"salesbot_unmigrated_{uuid.uuid4().hex[:6]}"

    async def admin_op(sql: str) -> None:
        engine = create_engine(PG_URL)
        async with engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text(sql))
        await engine.dispose()

    asyncio.run(admin_op(f'CREATE DATABASE "{name}"'))
    try:
        base = PG_URL.rsplit("/", 1)[0].replace("postgresql+asyncpg", "postgresql")
        result = run_cli("chat", "--db", f"{base}/{name}", stdin="帮助\n")
        assert result.returncode == 2, result.stderr
        assert "salesbot db upgrade" in result.stderr and "Traceback" not in result.stderr
        upgraded = run_cli("db", "upgrade", "--db", f"{base}/{name}")
        assert upgraded.returncode == 0, upgraded.stderr
        result = run_cli("chat", "--db", f"{base}/{name}", stdin="帮助\n")
        assert result.returncode == 0 and "命令一览" in result.stdout
    finally:
        asyncio.run(admin_op(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.skipif(not PG_URL, reason="needs SALESBOT_TEST_PG_URL")
async def test_healthz_answers_503_when_the_database_goes_away(pg_schema: str) -> None:
    proxy, db = await proxied_database(PG_URL, pg_schema)
    app = build_app(load_settings({}), database=db, components=[])
    async with TestClient(AppServer(app)) as client:
        response = await client.get("/healthz")
        assert response.status == 200 and (await response.json())["database"] == "ok"
        await proxy.cut()
        response = await client.get("/healthz")
        assert response.status == 503 and (await response.json())["database"] == "unreachable"
    await db.close()


@pytest.mark.skipif(not PG_URL, reason="needs SALESBOT_TEST_PG_URL")
async def test_a_command_after_the_database_dropped_idle_connections_just_works(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections idle past PING_AFTER_IDLE_S are checked before use, so a restart of PostgreSQL (or a
    firewall that drops quiet connections) overnight costs the first rep of the morning nothing."""
    from sqlalchemy import text

    import storage.engine

    proxy, db = await proxied_database(PG_URL, pg_schema)
    try:
        async with db.transaction() as store:
            assert (await store.session.execute(text("SELECT 1"))).scalar() == 1
        await proxy.drop_connections()
        monkeypatch.setattr(storage.engine, "PING_AFTER_IDLE_S", 0.0)
        async with db.transaction() as store:
            assert (await store.session.execute(text("SELECT 2"))).scalar() == 2
    finally:
        await db.close()
        await proxy.cut()


async def test_healthz_reports_the_database(db: Database) -> None:
    app = build_app(load_settings({}), database=db, components=[])
    async with TestClient(AppServer(app)) as client:
        response = await client.get("/healthz")
        assert response.status == 200 and (await response.json()) == {"status": "ok", "database": "ok"}


async def test_a_console_teams_scheduled_push_is_printed_by_the_service(db: Database) -> None:
    import io
    from datetime import datetime

    from bot.adapters.console import ConsoleDeliverer
    from bot.delivery import OutgoingMessage
    from bot.outbox import OutboxWorker
    from storage.models import OutboxMessage

    now = datetime.now(UTC)
    async with db.transaction() as store:
        org = await store.ensure_org("console", "console", now)
        team = await store.ensure_team(org, "销售一组", "销售一组", now)
        store.bind_team(org, team)
        body = OutgoingMessage("☀️ 早上好 <@张三>", names={"张三": "张三"}).to_json()
        await store.enqueue(
            platform="console",
            destination={"kind": "team", "chat_id": "销售一组"},
            dest_key="team:1",
            body=body,
            now=now,
        )
    out = io.StringIO()
    await OutboxWorker(db, {"console": ConsoleDeliverer(out)}).run_once()
    assert out.getvalue() == "[销售一组] ☀️ 早上好 @张三\n"
    async with db.session() as s:
        row = (await s.execute(select(OutboxMessage))).scalar_one()
    assert row.status == "sent"


def test_serve_workers_refuses_sqlite_with_a_reason(tmp_path: Path) -> None:
    result = run_cli("serve", "--workers", "2", "--port", "0", "--db", f"sqlite:///{tmp_path}/x.db")
    assert result.returncode == 2
    assert "PostgreSQL" in result.stderr and "--workers" in result.stderr


@pytest.mark.skipif(not PG_URL, reason="needs SALESBOT_TEST_PG_URL")
def test_serve_workers_share_one_port_on_postgresql(tmp_path: Path) -> None:
    import signal
    import socket
    import time
    import urllib.request
    import uuid

    from sqlalchemy import text

    from storage.engine import create_engine

    name = f"salesbot_workers_{uuid.uuid4().hex[:6]}"

    async def admin_op(sql: str) -> None:
        engine = create_engine(PG_URL)
        async with engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text(sql))
        await engine.dispose()

    asyncio.run(admin_op(f'CREATE DATABASE "{name}"'))
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    try:
        assert run_cli("db", "upgrade", "--db", url).returncode == 0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SALESBOT_")}
        parent = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--workers", "2", "--host", "127.0.0.1",
                                   "--port", str(port), "--db", url], env=env, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            children: list[str] = []
            up = False
            while time.monotonic() < deadline and not (up and len(children) == 2):
                time.sleep(0.2)
                try:
                    with open(f"/proc/{parent.pid}/task/{parent.pid}/children") as f:
                        children = f.read().split()
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                        up = resp.status == 200
                except OSError:
                    pass
            assert up and len(children) == 2
            for _ in range(10):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    assert resp.status == 200
        finally:
            parent.send_signal(signal.SIGTERM)
            assert parent.wait(30) == 0
        for pid in children:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    finally:
        asyncio.run(admin_op(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
