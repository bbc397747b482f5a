"""SQL helpers every query module shares: the one SQLite-vs-PostgreSQL insert switch, typed tables,
row counts and LIKE escaping.

Exactly-once decisions (a customer claimed once, a firing key taken once, a platform's re-delivery
recorded once) are INSERT … ON CONFLICT DO NOTHING, which SQLAlchemy spells per dialect; this is the
only module that chooses between `sqlalchemy.dialects.sqlite` and `…postgresql`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import String, Table, any_, bindparam, func, literal_column, select, update
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import ColumnElement

_INSERTS: dict[tuple[str, str, tuple[str, ...] | None], Insert] = {}


def table_of(model: type) -> Table:
    """A mapped class's `Table` (SQLAlchemy types `__table__` as the wider FromClause)."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


def dialect_of(session: AsyncSession) -> str:
    """"postgresql" or "sqlite": the dialect a session's statements compile for."""
    return session.bind.dialect.name if session.bind else "sqlite"


def insert_for(dialect: str, table: Table, conflict: Sequence[str] | None = None) -> Insert:
    """The dialect's INSERT into `table`, built once; with `conflict`, ON CONFLICT (conflict) DO NOTHING
    (an empty `conflict`: ON CONFLICT DO NOTHING, whichever unique key the row would break).

    The values go in as parameters of the execution, so every call of one kind runs one statement that
    the compiled cache and asyncpg's prepared-statement cache both recognise.
    """
    key = (dialect, table.name, tuple(conflict) if conflict is not None else None)
    stmt = _INSERTS.get(key)
    if stmt is None:
        built = _dialect_module(dialect).insert(table)
        stmt = built.on_conflict_do_nothing(index_elements=list(conflict) or None) if conflict is not None else built
        _INSERTS[key] = stmt
    return stmt


def _dialect_module(dialect: str) -> Any:
    """The dialect whose `insert` has ON CONFLICT. (Both dialect modules are loaded with the models anyway:
    SQLAlchemy loads a dialect to check the `postgresql_where=` of the partial indexes. The driver,
    asyncpg, is imported only on PostgreSQL.)"""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql
    from sqlalchemy.dialects import sqlite

    return sqlite


def rowcount(result: Result[Any]) -> int:
    """Rows an INSERT/UPDATE/DELETE touched (DML executions return a CursorResult)."""
    return int(cast(CursorResult[Any], result).rowcount or 0)


def escape_like(value: str) -> str:
    """`value` as a literal inside a LIKE pattern written with ESCAPE '\\'."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def status_in(column: ColumnElement[Any] | InstrumentedAttribute[Any], *statuses: str) -> ColumnElement[bool]:
    """`column IN ('a', 'b')` with the constants written into the SQL rather than bound.

    A queue table's partial indexes (outbox rows still to send, messages still to process) are
    usable only where PostgreSQL can prove the predicate from the statement itself; a bound status
    would leave a prepared statement's generic plan scanning the finished rows too. The constants
    are our own status names, never input.
    """
    for status in statuses:
        if not status.isidentifier():
            raise ValueError(f"not a status name: {status!r}")
    constants = [literal_column(f"'{status}'", String) for status in statuses]
    return column == constants[0] if len(constants) == 1 else column.in_(constants)


_UNNESTS: dict[tuple[str, tuple[str, ...], tuple[str, ...] | None, tuple[str, ...], str], Insert] = {}
_UNNEST_UPDATES: dict[tuple[str, tuple[str, ...], str], Update] = {}


def unnest_insert(table: Table, columns: Sequence[str], conflict: Sequence[str] | None = None,
                  returning: Sequence[str] = (), name: str = "u") -> Insert:
    """PostgreSQL: `INSERT INTO table (columns) SELECT unnest(:columns…)`, built once per shape.

    Any number of rows goes as one statement with one array per column: one parse, one plan and one
    round of the executor, where an executemany costs PostgreSQL a bind and an execution per row and a
    multi-row VALUES a new statement per row count. Rows come out of unnest in order, so ids follow it.
    Parameters: `unnest_params(columns, rows)`. `name` names the arrays (`<name>_<column>`): statements
    combined into one need names of their own.
    """
    key = (table.name, tuple(columns), tuple(conflict) if conflict is not None else None, tuple(returning), name)
    stmt = _UNNESTS.get(key)
    if stmt is None:
        from sqlalchemy.dialects import postgresql

        rows = unnest_table(name, **{c: table.c[c].type for c in columns})
        built = postgresql.insert(table).from_select(list(columns), select(*rows.c).select_from(rows))
        if conflict is not None:
            built = built.on_conflict_do_nothing(index_elements=list(conflict) or None)
        stmt = built.returning(*[table.c[c] for c in returning]) if returning else built
        _UNNESTS[key] = stmt
    return stmt


def _unbounded(type_: Any) -> Any:
    """A string column's type without its length: cast to VARCHAR(n)[], a value too long would be cut
    short without a word; as VARCHAR[] it reaches the column, which refuses it."""
    return String() if isinstance(type_, String) and type_.length is not None else type_


def unnest_params(columns: Sequence[str], rows: Sequence[dict[str, Any]], name: str = "u") -> dict[str, list[Any]]:
    """The parameters of `unnest_insert(…, columns, name=name)` for `rows` (dicts by column)."""
    return unnest_rows(name, columns, [[row[c] for c in columns] for row in rows])


def unnest_update(table: Table, columns: Sequence[str], name: str) -> Update:
    """PostgreSQL: `UPDATE table SET col = v.new_col … FROM unnest(…) AS v(row_id, new_col…) WHERE id = v.row_id`:
    rows by id, any number in one statement; built once per shape. Each id at most once (with two, which
    one PostgreSQL applies is not defined). Parameters: `unnest_rows(name, ("row_id", "new_<col>"…), rows)`."""
    key = (table.name, tuple(columns), name)
    stmt = _UNNEST_UPDATES.get(key)
    if stmt is None:
        rows = unnest_table(name, row_id=table.c.id.type, **{f"new_{c}": table.c[c].type for c in columns})
        stmt = update(table).where(table.c.id == rows.c.row_id).values({c: rows.c[f"new_{c}"] for c in columns})
        _UNNEST_UPDATES[key] = stmt
    return stmt


def unnest_table(name: str, **columns: Any) -> Any:
    """PostgreSQL: `unnest(:name_col1, :name_col2, …) AS name(col1, col2, …)`, a relation of rows given as one
    array per column (`unnest_rows`), to join a batch's keys against.

    One statement for any number of rows, where an IN list is a new statement (parse, plan, a prepared
    statement per connection) for each count; and each row of it is a lookup by the joined key.
    """
    from sqlalchemy.dialects.postgresql import ARRAY

    arrays = [bindparam(f"{name}_{column}", type_=ARRAY(_unbounded(type_))) for column, type_ in columns.items()]
    return func.unnest(*arrays).table_valued(*columns).render_derived(name=name)


def unnest_rows(name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """The parameters of `unnest_table(name, …columns)` for `rows` (tuples in the order of `columns`)."""
    return {f"{name}_{column}": [row[k] for row in rows] for k, column in enumerate(columns)}


def one_of(column: Any, name: str, postgres: bool) -> ColumnElement[bool]:
    """`column` is one of the values bound as `name` (a list): `= ANY(:name)` with one array on PostgreSQL
    (one statement for any count), an expanding IN list elsewhere."""
    if postgres:
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))
