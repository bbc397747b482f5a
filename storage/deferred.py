"""Rows a unit of work writes and does not read back — the audit row of each change, the outbox row of each
reply — wait with the session and go in one executemany per table just before COMMIT: one round trip for
a whole batch of commands (bot.router group commit) instead of one per row.

Nothing can tell the difference. Any statement that is not marked `deferral_safe` (one known not to read
those tables) writes the waiting rows first, so a query over audit_log or outbox in the same transaction
sees them as before, and rows keep their order; a rollback drops them with everything else; they count
as writes for `StoreBase.wrote_since`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

S = TypeVar("S", bound=Executable)

_SAFE: set[int] = set()
_PENDING = "deferred"


def deferral_safe(stmt: S) -> S:
    """Mark a statement that cannot see deferred rows (it reads or writes neither audit_log nor outbox).

    Only for statements that live as long as the process (module constants, caches that never shrink):
    they are known by identity, and the id of a live object is never reused.
    """
    _SAFE.add(id(stmt))
    return stmt


def defer(session: AsyncSession, stmt: Executable, values: dict[str, Any]) -> None:
    """Queue one row of `stmt` (a prebuilt INSERT without RETURNING) until the next flush."""
    info = session.info
    info.setdefault(_PENDING, {}).setdefault(stmt, []).append(values)
    info["writes"] = info.get("writes", 0) + 1


def needs_flush(session: Session, stmt: Any) -> bool:
    """Whether rows wait and `stmt` might see them (called for every statement: kept to two lookups)."""
    return _PENDING in session.info and id(stmt) not in _SAFE


def flush_now(session: Session) -> None:
    """Write the waiting rows from inside a statement's execution (the sync session, in its greenlet)."""
    for stmt, rows in session.info.pop(_PENDING, {}).items():
        session.execute(stmt, rows)


async def flush(session: AsyncSession) -> None:
    """Write the waiting rows: the unit of work calls this before COMMIT."""
    for stmt, rows in session.info.pop(_PENDING, {}).items():
        await session.execute(stmt, rows)
