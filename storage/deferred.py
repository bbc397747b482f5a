"""Rows a unit of work writes and does not read back — the follow-up row of a 跟进, the audit row of each
change, the outbox row of each reply — wait with the session and go in one executemany per statement just
before COMMIT: one round trip for a whole batch of commands (bot.router group commit) instead of one per row.
On PostgreSQL the statements of different tables go together too, as one statement of data-modifying CTEs:
a 跟进's follow-up row, its customer's UPDATE, its audit row and its reply's outbox row are one round trip.

Nothing can tell the difference. A statement that is not marked `deferral_safe` writes the waiting rows
first, and so does a marked one that touches a table rows wait for (the tables it touches are found once,
when it is marked): a query over followups, audit_log or outbox in the same transaction sees them as
before, and rows keep their order; a rollback drops them with everything else; they count as writes for
`StoreBase.wrote_since`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import Insert, Table, Update, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable, visitors

from storage import changes
from storage.sql import unnest_insert, unnest_params, unnest_rows, unnest_update

if TYPE_CHECKING:
    from storage.direct import Direct

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
    """Queue one row of `stmt` (a prebuilt plain INSERT — no RETURNING, no ON CONFLICT — or an UPDATE of one
    row by its id, `row_id`, with `new_<column>` values as storage.followups builds them; marked) until the
    next flush."""
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
    """(statement, parameters) that write the waiting rows: on PostgreSQL one statement (`_combined`) or, when
    one table has rows in two statements (or there is one statement), each statement's rows as one
    INSERT … SELECT unnest(…) or UPDATE … FROM unnest(…) (storage.sql): always one mapping of arrays, which
    the transaction's connection takes directly (`flush`); elsewhere an executemany per statement."""
    postgres = session.get_bind().dialect.name == "postgresql"
    parts: list[tuple[Any, list[dict[str, Any]]]] = []
    for stmt, rows in pending.items():
        if postgres and isinstance(stmt, Insert):
            by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row in rows:
                by_columns.setdefault(tuple(row), []).append(row)
            parts += [(stmt, same) for same in by_columns.values()]
        else:
            parts.append((stmt, rows))
    if not postgres:
        return parts
    tables = [cast(Table, stmt.table).name for stmt, _ in parts]
    if len(parts) > 1 and len(set(tables)) == len(tables):
        return [_combined(parts)]
    # A table in two statements: in one, which of its rows came first (ids, the outbox's order per
    # destination) and which UPDATE of a row won would not be defined. In turn, as written.
    return [_insert_or_update(stmt, rows, "u") for stmt, rows in parts]


def _insert_or_update(stmt: Any, rows: list[dict[str, Any]], name: str) -> tuple[Any, dict[str, list[Any]]]:
    """PostgreSQL: the rows of one waiting INSERT or UPDATE (`UPDATE … WHERE id = :row_id`, storage.followups)
    as one statement over arrays named `name`. An UPDATE keeps the last row per id, as one after another would."""
    table = cast(Table, stmt.table)
    if isinstance(stmt, Insert):
        columns = tuple(rows[0])
        return unnest_insert(table, columns, name=name), unnest_params(columns, rows, name)
    latest = {row["row_id"]: row for row in rows}
    keys = ("row_id", *(key for key in rows[0] if key != "row_id"))
    statement = unnest_update(table, [key.removeprefix("new_") for key in keys[1:]], name)
    return statement, unnest_rows(name, keys, [[row[k] for k in keys] for row in latest.values()])


def _combined(parts: list[tuple[Any, list[dict[str, Any]]]]) -> tuple[Any, dict[str, list[Any]]]:
    """One PostgreSQL statement for the waiting rows of several tables: each table's INSERT or UPDATE a
    data-modifying CTE (`WITH d0 AS (INSERT …), d1 AS (UPDATE …) SELECT 1`). They run on one snapshot and
    none reads another's rows; constraints are checked at the end of the statement, as at the end of each."""
    statements, params = [], {}
    for index, (stmt, rows) in enumerate(parts):
        statement, values = _insert_or_update(stmt, rows, f"d{index}")
        statements.append(statement)
        params.update(values)
    key = tuple(map(id, statements))  # built once per shape: its parts are kept for the process's life
    combined = _COMBINED.get(key)
    if combined is None:
        combined = _COMBINED[key] = select(1).add_cte(*(s.cte(f"d{i}") for i, s in enumerate(statements)))
    return combined, params


_COMBINED: dict[tuple[int, ...], Any] = {}


def flush_now(session: Session) -> None:
    """Write the waiting rows from inside a statement's execution (the sync session, in its greenlet)."""
    session.info.pop(_TABLES, None)
    session.info[WRITING] = True  # counted as writes when they were deferred, not again now
    try:
        for stmt, params in _executions(session, session.info.pop(_PENDING, {})):
            session.execute(stmt, params)
    finally:
        session.info.pop(WRITING, None)


async def flush(session: AsyncSession, direct: Direct | None = None) -> None:
    """Write the waiting rows: the unit of work calls this before COMMIT. They were written before any
    ORM change still in memory, so they go first (no autoflush): a waiting UPDATE must not undo a later one.

    With `direct` (PostgreSQL) they go straight to the transaction's connection (storage.direct): these
    statements need nothing of the session's execution (no autoflush, no hooks: they are counted already),
    and through it one costs ~140 µs more of the process's CPU, a lone command's every transaction."""
    session.info.pop(_TABLES, None)
    session.info[WRITING] = True
    try:
        with session.no_autoflush:
            for stmt, params in _executions(session.sync_session, session.info.pop(_PENDING, {})):
                if direct is None or await direct.fetch_in(session, stmt, params) is None:
                    await session.execute(stmt, params)
    finally:
        session.info.pop(WRITING, None)
