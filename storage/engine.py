"""Opening the database: URL handling, SQLite tuning, and the migration gate.

SQLite is the embedded default, so it has to behave under concurrent commands too: WAL lets readers
run beside the writer, a busy timeout makes writers queue instead of failing, and every transaction
starts with BEGIN IMMEDIATE so that two commands never both read and then both try to upgrade to a
write lock (which SQLite answers with an instant "database is locked", whatever the timeout).

Because every transaction takes the write lock, connections in one process can never work in
parallel anyway; with several of them, the losers wait inside SQLite's busy handler, which sleeps in
steps of up to 100 ms and measured p50 ≈ 220 ms at 20 concurrent commands. So a file database gets a
pool of one connection: commands queue on the pool (asyncio, FIFO, no sleeping) and the lock is never
contended within the process. Another process (a CLI command beside `serve`) still waits on the busy
timeout. Never hold one unit of work open while opening another on SQLite: the second would wait for
the pool until `pool_timeout`.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import orjson
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///salesbot.db"

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
}


class DatabaseURLError(ValueError):
    pass


def async_url(url: str) -> str:
    """Accept plain `sqlite:///…` and `postgresql://…` and pick the async driver for the user."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with an English message
        raise DatabaseURLError(f"数据库地址格式不对：{url!r}。示例：sqlite:///salesbot.db") from exc
    driver = _ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername)
    if driver not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise DatabaseURLError(
            f"不支持的数据库：{parsed.drivername}。请使用 sqlite:///文件名.db 或 postgresql://用户@主机/库名"
        )
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def is_sqlite(engine_or_url: AsyncEngine | str) -> bool:
    name = engine_or_url.dialect.name if isinstance(engine_or_url, AsyncEngine) else make_url(
        async_url(engine_or_url)
    ).get_backend_name()
    return name == "sqlite"


def json_text(value: Any) -> str:
    """A JSON column's value as text (orjson: every outbox and inbound row carries two or three).

    Keys that are not strings become strings, as the standard library makes them.
    """
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def create_engine(url: str, *, pool_size: int = 20, **kwargs: Any) -> AsyncEngine:
    url = async_url(url)
    kwargs.setdefault("json_serializer", json_text)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if make_url(url).get_backend_name() == "sqlite":
        if make_url(url).database not in (None, "", ":memory:"):
            kwargs.setdefault("pool_size", 1)
            kwargs.setdefault("max_overflow", 0)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _tune_sqlite(engine)
        return engine
    # Connections beyond pool_size ("overflow") are closed as soon as they are returned, so a pool
    # too small for the usual concurrency (callbacks being acknowledged, queue workers, the outbox)
    # opens and closes a connection per request under load; 20 covers that, 10 more absorb peaks.
    kwargs.setdefault("max_overflow", 10)
    # Last in, first out: the connections a load needs stay the few in use, each with its prepared
    # statements and their plans warm (PostgreSQL plans a prepared statement anew for its first five
    # runs on each connection); round-robin over twenty spread that cost twenty times as wide.
    kwargs.setdefault("pool_use_lifo", True)
    engine = create_async_engine(url, pool_size=pool_size, **kwargs)
    _ping_when_idle(engine)
    return engine


# A pooled connection that sat unused this long is checked before use; a busy one is not.
PING_AFTER_IDLE_S = 10.0


# engine → when a connection of it was last found lost outside SQLAlchemy's execution (storage.direct):
# the pooled ones that came back before that are pinged on checkout, as SQLAlchemy's own disconnect
# handling would have invalidated them.
_lost: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def note_lost_connection(engine: AsyncEngine) -> None:
    """A connection of `engine` turned out dead: its siblings in the pool may be too (a restart, an outage)."""
    _lost[engine.sync_engine] = time.monotonic()


def _ping_when_idle(engine: AsyncEngine) -> None:
    """`pool_pre_ping`, but only for connections that have been idle a while.

    SQLAlchemy's pre-ping costs three round trips on asyncpg (BEGIN, a query, ROLLBACK) on *every*
    checkout, about a quarter of a short command's round trips. What it guards against — a server
    restart or a firewall dropping quiet connections — happens to idle connections; a connection that
    was in use a moment ago is alive, and if it died since, the statement fails, SQLAlchemy sees the
    disconnect and invalidates the pool, and the command is retried (queued platforms) or apologised
    for, like any command that meets a database outage.
    """
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or (time.monotonic() - since < PING_AFTER_IDLE_S and since > _lost.get(sync_engine, 0.0)):
            return
        try:
            alive = sync_engine.dialect.do_ping(dbapi_connection)
        except Exception:
            alive = False
        if not alive:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError("pooled connection went away while idle")


def _tune_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
