"""PostgreSQL's queue statements run straight on asyncpg, outside SQLAlchemy's execution machinery.

The acknowledgement's INSERT, the outbox claim and settle and the send windows' swap are autocommitted
single statements that run for every message or every pass. Measured on asyncpg, one such statement
through `engine.connect()` and `conn.execute()` cost ~620–680 µs of this process's CPU, the same
statement on the pooled connection's asyncpg handle ~280 µs (of which ~120 µs is the pool checkout):
SQLAlchemy's execution context, result wrapping and the greenlet bridge cost more than the round trip.

A unit of work's waiting rows (storage.deferred) go the same way inside its transaction (`Direct.fetch_in`),
on the connection SQLAlchemy began it on.

The statements stay written once, as SQLAlchemy Core, and are compiled once for the engine's dialect
(`DirectStatement`): the same SQL text SQLAlchemy would send, its parameters in order, each through
the bind processor its type has there (our UTC timestamps, JSON as text for the connection's codec),
and each result column through its result processor. What SQLAlchemy does on a failure is kept:
a lost connection is invalidated in the pool, and asyncpg's errors come out as SQLAlchemy's (`_translated`),
so callers tell an outage from a refused row as before. SQLite does not come here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql import ClauseElement

from storage.engine import PING_AFTER_IDLE_S, note_lost_connection

Row = tuple[Any, ...]
_Processor = Callable[[Any], Any] | None
# Connections kept checked out between statements: the acknowledgements' writer and a few outbox passes.
HELD_MAX = 4
PING_TIMEOUT_S = 5.0
_HELD = "direct_connection"  # session.info: (its transaction, asyncpg's Connection, the AsyncConnection)


class DirectStatement:
    """A Core statement compiled once for PostgreSQL: SQL text, parameter order and converters."""

    def __init__(self, statement: ClauseElement, dialect: Any) -> None:
        compiled: Any = statement.compile(dialect=dialect)  # an SQLCompiler: positiontup, binds
        self.sql = compiled.string
        if "POSTCOMPILE" in self.sql:
            raise ValueError("expanding parameters are not supported on the direct path; use an array")
        names: Sequence[str] = compiled.positiontup or ()
        self.names = list(names)
        # Values written into the statement (`column == 5`) travel as anonymous parameters.
        self.defaults = {name: compiled.binds[name].effective_value for name in self.names
                         if not compiled.binds[name].required}
        self.binds: list[_Processor] = [
            dialect.type_descriptor(compiled.binds[name].type).bind_processor(dialect) for name in self.names
        ]
        columns = getattr(statement, "exported_columns", None) or ()
        processors = [dialect.type_descriptor(c.type).result_processor(dialect, None) for c in columns]
        self.results: list[_Processor] | None = processors if any(processors) else None

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, process in zip(self.names, self.binds, strict=True):
            value = params[name] if name in params else self.defaults[name]
            values.append(process(value) if process is not None and value is not None else value)
        return values

    def rows(self, records: Sequence[Any]) -> list[Row]:
        if self.results is None:
            return [tuple(r) for r in records]
        results = self.results
        return [
            tuple(p(v) if p is not None else v for p, v in zip(results, record, strict=True)) for record in records
        ]


class Direct:
    """Runs `DirectStatement`s on a pooled connection, autocommitted.

    The connections it used stay checked out between statements, a few of them (`HELD_MAX`): a checkout
    and checkin of the pool cost ~125 µs of this process's CPU, more than the statement's own ~75 µs, and
    a lone message runs four such statements (its acknowledgement, the outbox's claim, window and settle).
    One that sat unused for `PING_AFTER_IDLE_S` is pinged first, as the pool pings its own, and dropped if
    it does not answer; `close` hands them back before the engine is disposed.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._compiled: dict[int, tuple[ClauseElement, DirectStatement]] = {}
        self._held: list[tuple[AsyncConnection, Any, float]] = []  # idle: connection, asyncpg's, since

    async def _checkout(self) -> tuple[AsyncConnection, Any]:
        now = time.monotonic()
        while self._held:
            conn, raw, since = self._held.pop()
            if not raw.is_closed() and (now - since < PING_AFTER_IDLE_S or await _answers(raw)):
                return conn, raw
            note_lost_connection(self.engine)  # the server or the network closed it: its siblings may be gone too
            await _drop(conn)
        conn = await self.engine.connect()
        try:
            return conn, (await conn.get_raw_connection()).driver_connection
        except BaseException:
            await conn.close()
            raise

    async def _checkin(self, conn: AsyncConnection, raw: Any) -> None:
        if len(self._held) < HELD_MAX and not raw.is_in_transaction():
            self._held.append((conn, raw, time.monotonic()))
        else:
            await conn.close()

    async def close(self) -> None:
        """Hand the held connections back to the pool (the database is closing)."""
        held, self._held = self._held, []
        for conn, _, _ in held:
            await conn.close()

    def prepare(self, statement: ClauseElement) -> DirectStatement:
        """The compiled form, kept by the statement's identity (statements here are module constants)."""
        found = self._compiled.get(id(statement))
        if found is None or found[0] is not statement:
            found = (statement, DirectStatement(statement, self.engine.dialect))
            self._compiled[id(statement)] = found
        return found[1]

    async def fetch(self, statement: ClauseElement, params: Mapping[str, Any]) -> list[Row]:
        """Run one statement in its own implicit transaction; its rows (RETURNING or SELECT), converted."""
        conn, raw = await self._checkout()
        try:
            rows = await self._run(conn, raw, statement, params)
        except exc.DBAPIError as err:
            await (_drop(conn) if err.connection_invalidated else self._checkin(conn, raw))
            raise
        except BaseException:  # cancelled mid-statement: the connection's state is unknown
            await _drop(conn)
            raise
        await self._checkin(conn, raw)
        return rows

    async def fetch_in(self, session: AsyncSession, statement: ClauseElement,
                       params: Mapping[str, Any]) -> list[Row] | None:
        """Run one statement inside `session`'s transaction, on the asyncpg handle of the connection the
        transaction holds; its rows, converted. None, and nothing run, until the transaction has begun on the
        server: its first statement goes through SQLAlchemy, whose driver adapter sends the BEGIN and owns
        the transaction (COMMIT, ROLLBACK). What the session does around a statement (autoflush, its
        `do_orm_execute` hooks) is the caller's: this is for statements that need none of it."""
        transaction = session.sync_session.get_transaction()
        if transaction is None:
            return None
        held = session.info.get(_HELD)
        if held is None or held[0] is not transaction:
            conn = await session.connection()
            raw: Any = (await conn.get_raw_connection()).driver_connection
            held = session.info[_HELD] = (transaction, raw, conn)
        _, raw, conn = held
        if not raw.is_in_transaction():
            return None
        try:
            return await self._run(conn, raw, statement, params)
        except exc.DBAPIError as err:
            if err.connection_invalidated:
                await conn.invalidate()
            raise

    async def _run(self, conn: AsyncConnection, raw: Any, statement: ClauseElement,
                   params: Mapping[str, Any]) -> list[Row]:
        """`statement` on `raw` (asyncpg's Connection of `conn`). Its errors come out as SQLAlchemy's
        (`_translated`); one that lost the connection says so (`connection_invalidated`), and then
        nothing held is trusted either: an outage, maybe (`note_lost_connection`)."""
        prepared = self.prepare(statement)
        arguments = prepared.arguments(params)
        observers = self.engine.sync_engine.dispatch.before_cursor_execute
        if observers:  # what watches the engine's statements (a bench's counter, a test) sees these too
            observers(conn.sync_connection, None, prepared.sql, arguments, None, False)
        try:
            records = await raw.fetch(prepared.sql, *arguments)
        except Exception as err:
            lost = _is_disconnect(err)
            if lost:
                note_lost_connection(self.engine)
                held, self._held = self._held, []
                for other, _, _ in held:
                    await _drop(other)
            raise _translated(err, prepared.sql, lost) from err
        return prepared.rows(records)


async def _answers(raw: Any) -> bool:
    """A held connection that sat unused a while, pinged as the pool pings one (storage.engine)."""
    try:
        await raw.execute("SELECT 1", timeout=PING_TIMEOUT_S)
    except Exception:
        return False
    return True


async def _drop(conn: AsyncConnection) -> None:
    """Give up a connection that may be dead or in an unknown state: the pool discards it."""
    try:
        await conn.invalidate()
    finally:
        await conn.close()


def _is_disconnect(err: BaseException) -> bool:
    """Whether the connection must not be handed out again: the server said the connection is over
    (SQLSTATE class 08, or an administrator's shutdown), or the error is the client's own (a closed
    socket, a timeout, a protocol in an unknown state — e.g. a backend killed between statements)."""
    import asyncpg  # only a PostgreSQL process gets here; a SQLite one never loads the driver

    if isinstance(err, asyncpg.PostgresError):
        state = str(getattr(err, "sqlstate", "") or "")
        return state.startswith("08") or state in ("57P01", "57P02", "57P03")
    return True


# SQLSTATE classes (https://www.postgresql.org/docs/current/errcodes-appendix.html) as the DB-API's classes.
_BY_CLASS: dict[str, type[exc.DBAPIError]] = {
    "22": exc.DataError,  # data exception: a value too long, not encodable
    "23": exc.IntegrityError,
    "42": exc.ProgrammingError,
    "0A": exc.NotSupportedError,
    "XX": exc.InternalError,
}


def _translated(err: BaseException, sql: str, lost: bool) -> exc.DBAPIError:
    """asyncpg's error as the SQLAlchemy error its dialect would raise: an outage is an OperationalError
    (with `connection_invalidated` when the connection went), a refused value a DataError, and so on."""
    sqlstate = str(getattr(err, "sqlstate", "") or "")
    kind = exc.OperationalError if lost or not sqlstate else _BY_CLASS.get(sqlstate[:2], exc.OperationalError)
    return kind(sql, None, err, connection_invalidated=lost)
