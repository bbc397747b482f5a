"""Rows a unit of work writes and does not read back — the follow-up row of a 跟进, the audit row of each
change, the outbox row of each reply — wait with the session and go in one executemany per statement just
before COMMIT: one round trip for a whole batch of commands (bot.router group commit) instead of one per row.

Nothing can tell the difference. A statement that is not marked `deferral_safe` writes the waiting rows
first, and so does a marked one that touches a table rows wait for (the tables it touches are found once,
when it is marked): a query over followups, audit_log or outbox in the same transaction sees them as
before, and rows keep their order; a rollback drops them with everything else; they count as writes for
`StoreBase.wrote_since`.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from sqlalchemy import Insert, Table, Update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable, visitors

from storage import changes
from storage.sql import unnest_insert, unnest_params

S = TypeVar("S", bound=Executable)

_SAFE: dict[int, frozenset[str]] = {}  # id of a marked statement → the tables it touches
_PENDING = "deferred"  # session.info: statement → rows waiting
_TABLES = "deferred_tables"  # session.info: the tables rows wait for
WRITING = "deferred_writing"  # session.info: set while the waiting rows are being written


def deferral_safe(stmt: S) -> S:
    """Mark a statement whose tables are known, so that rows waiting for other tables stay waiting.

    Only for statements that live as long as the process (module constants, caches that never shrink):
    they are known by identity, and the id of a live object is never reused.
    """
    if id(stmt) not in _SAFE:
        _SAFE[id(stmt)] = frozenset(e.name for e in visitors.iterate(stmt) if isinstance(e, Table))  # type: ignore[arg-type]
    return stmt


def defer(session: AsyncSession, stmt: Insert | Update, values: dict[str, Any]) -> None:
    """Queue one row of `stmt` (a prebuilt INSERT without RETURNING, or UPDATE of one row by its id;
    marked) until the next flush."""
    info = session.info
    info.setdefault(_PENDING, {}).setdefault(stmt, []).append(values)
    name = cast(Table, stmt.table).name
    info.setdefault(_TABLES, set()).add(name)
    info["writes"] = info.get("writes", 0) + 1
    changes.note_statement(session.sync_session, (name,), stmt)


def waiting(session: Session) -> bool:
    """Whether rows wait for the end of the unit of work."""
    return bool(session.info.get(_TABLES))


def needs_flush(session: Session, stmt: Any) -> bool:
    """Whether rows wait and `stmt` might see them (called for every statement: kept to a few lookups)."""
    waiting = session.info.get(_TABLES)
    if not waiting:
        return False
    touches = _SAFE.get(id(stmt))
    return touches is None or not touches.isdisjoint(waiting)


def _executions(session: Session, pending: dict[Any, list[dict[str, Any]]]) -> list[tuple[Any, Any]]:
    """(statement, parameters) that write the waiting rows: on PostgreSQL a statement's inserted rows go
    as one INSERT … SELECT unnest(…) (storage.sql.unnest_insert), elsewhere as an executemany."""
    postgres = session.get_bind().dialect.name == "postgresql"
    executions: list[tuple[Any, Any]] = []
    for stmt, rows in pending.items():
        if postgres and isinstance(stmt, Insert) and len(rows) > 1:
            by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row in rows:
                by_columns.setdefault(tuple(row), []).append(row)
            for columns, same in by_columns.items():
                executions.append((unnest_insert(cast(Table, stmt.table), columns), unnest_params(columns, same)))
        else:
            executions.append((stmt, rows))
    return executions


def flush_now(session: Session) -> None:
    """Write the waiting rows from inside a statement's execution (the sync session, in its greenlet)."""
    session.info.pop(_TABLES, None)
    session.info[WRITING] = True  # counted as writes when they were deferred, not again now
    try:
        for stmt, params in _executions(session, session.info.pop(_PENDING, {})):
            session.execute(stmt, params)
    finally:
        session.info.pop(WRITING, None)


async def flush(session: AsyncSession) -> None:
    """Write the waiting rows: the unit of work calls this before COMMIT. They were written before any
    ORM change still in memory, so they go first (no autoflush): a waiting UPDATE must not undo a later one."""
    session.info.pop(_TABLES, None)
    session.info[WRITING] = True
    try:
        with session.no_autoflush:
            for stmt, params in _executions(session.sync_session, session.info.pop(_PENDING, {})):
                await session.execute(stmt, params)
    finally:
        session.info.pop(WRITING, None)
