"""What a unit of work has changed, per table, so that a read made earlier can tell whether it still holds.

A batch of commands shares one transaction (bot.router group commit), and a read made for the whole
batch at its start (storage.prefetch) is only as good as a fresh SELECT would be at the moment a
command uses it. Two counts per table answer that, without a statement:

* *rows*: rows that may have come, gone or moved — an INSERT, UPDATE or DELETE statement on the table
  (the database decides which rows it hit), an ORM object added or deleted, or one whose key columns
  (those a lookup filters on: `KEY_COLUMNS`) changed. A changed value elsewhere does not count: the
  objects are identity-mapped, so an earlier read hands out the very object that carries the new value,
  as a fresh SELECT would.
* *any*: every change at all, for a read whose order or filter depends on any column (我的).

Changes still in memory (not flushed) count as well (`changed_since`), because a fresh SELECT would
flush them first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import inspect
from sqlalchemy.orm import Session

S = TypeVar("S")
_ROWS = "changed_rows"  # session.info: table → count
_ANY = "changed_any"  # session.info: table → count
_ALL = "*"  # a statement whose tables are not known: every table

# Columns lookups find, filter or order rows by (a customer by name, a search: who sees it, what it is
# called); a change to one of them moves a row in or out of a lookup's result or changes its place.
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("org_id", "team_id", "norm_name", "name", "duplicate_of_id", "owner_id", "company_pool"),
    "deals": ("org_id", "customer_id", "status"),
    "collaborators": ("customer_id", "member_id"),
}

Mark = tuple[int, tuple[int, ...], tuple[int, ...]]  # (all changes, rows of the tables, any of the tables)
_TOTAL = "changed_total"  # session.info: every change counted, whatever the table
_VALUES_ONLY: set[int] = set()  # ids of prebuilt UPDATEs by primary key that set no key column


def values_only(stmt: S) -> S:
    """Mark a prebuilt `UPDATE … WHERE id = :row_id` that sets no key column: it moves no row in or out
    of a lookup. Only for statements that live as long as the process (known by identity)."""
    _VALUES_ONLY.add(id(stmt))
    return stmt


def note_statement(session: Session, tables: Iterable[str] | None, stmt: object = None) -> None:
    """An INSERT, UPDATE or DELETE ran or waits (or text nobody vouched for: `tables` None)."""
    rows = id(stmt) not in _VALUES_ONLY
    for name in (_ALL,) if tables is None else tables:
        _bump(session, name, rows=rows)


def note_flush(session: Session) -> None:
    """Called before a flush: count what it is about to write."""
    for obj in (*session.new, *session.deleted):
        _bump(session, _table_of(obj), rows=True)
    for obj in session.dirty:
        name = _table_of(obj)
        _bump(session, name, rows=_keys_changed(obj, name))


def mark(session: Session, tables: tuple[str, ...]) -> Mark:
    """Where the counts of `tables` stand now."""
    info = session.info
    rows, any_ = info.get(_ROWS, {}), info.get(_ANY, {})
    return (info.get(_TOTAL, 0), tuple(rows.get(t, 0) for t in (*tables, _ALL)),
            tuple(any_.get(t, 0) for t in (*tables, _ALL)))


def changed_since(session: Session, tables: tuple[str, ...], since: Mark, *, any_column: bool = False) -> bool:
    """Whether rows of `tables` may have changed since `since` (any column too, with `any_column`),
    flushed or still in memory."""
    if session.info.get(_TOTAL, 0) != since[0]:  # something was counted since: were these tables among it?
        now = mark(session, tables)
        if now[1] != since[1] or (any_column and now[2] != since[2]):
            return True
    for obj in (*session.new, *session.deleted):
        if _table_of(obj) in tables:
            return True
    for obj in session.dirty:
        name = _table_of(obj)
        if name in tables and (any_column or _keys_changed(obj, name)):
            return True
    return False


def _bump(session: Session, name: str, *, rows: bool) -> None:
    info = session.info
    info[_TOTAL] = info.get(_TOTAL, 0) + 1
    counts = info.setdefault(_ANY, {})
    counts[name] = counts.get(name, 0) + 1
    if rows:
        counts = info.setdefault(_ROWS, {})
        counts[name] = counts.get(name, 0) + 1


def _table_of(obj: Any) -> str:
    table = getattr(type(obj), "__tablename__", None)
    return table if isinstance(table, str) else _ALL


def _keys_changed(obj: Any, name: str) -> bool:
    keys = KEY_COLUMNS.get(name)
    if keys is None:
        return True  # a table nobody declared keys for: any change may move its rows
    attrs = inspect(obj).attrs
    return any(attrs[key].history.has_changes() for key in keys)
