"""Which customers a rep sees whose names contain what they wrote, and the names "你是不是指" picks from —
for one rep or for several at once (a batch of commands, storage.prefetch), with one statement each.

A rep sees their team's customers, the company pool and the customers they collaborate on in other
teams. Written as one OR over the organisation's customers, no index serves that and every search read
the whole organisation (200,000 customers: 20–40 ms); as a UNION of the three — the team's (its index),
the pool's (a partial index, migration 0020) and the collaborations — a search reads only what the rep
can see. The askers are a relation of their own (`q`: index, team, member, patterns), so several reps'
searches are one statement; each keeps its own order and limit (a window per asker). For several askers on
PostgreSQL `q` is unnest() of one array per column: one statement for any number of them, planned as one
relation (as a UNION ALL of bound rows, PostgreSQL planned a batch's search anew each time, ~1 ms). One
asker is one row of parameters; SQLite has no arrays: there several are a UNION ALL, built for a power of
two of askers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, Select, String, and_, bindparam, func, or_, select, union, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.deferred import deferral_safe
from storage.models import Collaborator, Customer
from storage.sql import dialect_of, escape_like, table_of, unnest_rows, unnest_table

SEARCH_LIMIT = 20
Asker = tuple[int, int, str, str]  # team id, member id, normalised query, query as written

_CT, _KT = table_of(Customer), table_of(Collaborator)
_SEARCHES: dict[tuple[int, bool], Select[Any]] = {}  # by shape (0: askers as arrays) and PostgreSQL or not
_NAMES: dict[int, Select[Any]] = {}
_SEARCH_COLUMNS = (("t", Integer), ("m", Integer), ("n", String), ("pn", String), ("pr", String))
_NAMES_COLUMNS = (("t", Integer), ("m", Integer))


async def search_many(session: AsyncSession, org_id: int, askers: Sequence[Asker],
                      limit: int = SEARCH_LIMIT) -> list[list[Customer]]:
    """For each asker, the customers they see whose normalised or display name contains their query,
    exact matches first, then shorter names (at most `limit`). An empty query part matches nothing."""
    rows = [(team_id, member_id, norm, f"%{escape_like(norm)}%" if norm else None,
             f"%{escape_like(raw)}%" if raw else None) for team_id, member_id, norm, raw in askers]
    shape, pg = _shape_for(session, len(askers))
    params = {"org_id": org_id, "limit": limit,
              **_asker_params(shape, _SEARCH_COLUMNS, rows, (None, None, "", None, None))}
    found: list[list[Customer]] = [[] for _ in askers]
    for customer, i in (await session.execute(_searches(shape, pg), params)).all():
        found[i].append(customer)
    return found


async def visible_names_many(session: AsyncSession, org_id: int,
                             askers: Sequence[tuple[int, int]]) -> list[list[tuple[int, str, str]]]:
    """For each (team id, member id), (id, normalised name, name) of every customer they see."""
    shape, _ = _shape_for(session, len(askers))
    params = {"org_id": org_id, **_asker_params(shape, _NAMES_COLUMNS, askers, (None, None))}
    found: list[list[tuple[int, str, str]]] = [[] for _ in askers]
    for i, cid, norm, name in (await session.execute(_visible_names(shape), params)).all():
        found[i].append((cid, norm, name))
    return found


def _shape_for(session: AsyncSession, n: int) -> tuple[int, bool]:
    """The number of asker rows a statement is built for, and whether it is PostgreSQL's.

    One asker (a command on its own): one row of parameters, everywhere. PostgreSQL plans that once per
    connection and keeps the plan; an array it would plan anew at every run (its generic plan guesses ten
    elements, so it keeps to custom plans). Several on PostgreSQL: 0, the statement whose askers are arrays.
    Several on SQLite: a power of two, so that a process compiles a handful of shapes (each ~20 ms and kept
    in memory), not one per batch size."""
    pg = dialect_of(session) == "postgresql"
    if n > 1 and pg:
        return 0, pg
    return 1 << (n - 1).bit_length(), pg


def _asker_params(shape: int, cols: Sequence[tuple[str, Any]], rows: Sequence[Sequence[Any]],
                  pad: tuple[Any, ...]) -> dict[str, Any]:
    """The askers as the statement of `shape` takes them: one array per column (PostgreSQL), or one
    parameter per column and asker, padded with askers who ask for nothing (no team, no member: they
    see nothing)."""
    if shape == 0:
        return unnest_rows("q", ("i", *(p for p, _ in cols)), [(i, *row) for i, row in enumerate(rows)])
    params: dict[str, Any] = {}
    for i, row in enumerate([*rows, *[pad] * (shape - len(rows))]):
        params[f"i{i}"] = i
        params.update({f"{p}{i}": row[k] for k, (p, _) in enumerate(cols)})
    return params


def _askers(shape: int, cols: Sequence[tuple[str, Any]]) -> Any:
    if shape == 0:
        return unnest_table("q", i=Integer, **dict(cols))
    rows = [select(bindparam(f"i{k}", k, type_=Integer).label("i"),
                   *(bindparam(f"{p}{k}", type_=t).label(p) for p, t in cols)) for k in range(shape)]
    return (union_all(*rows) if shape > 1 else rows[0]).subquery("q")


def _seen_by(q: Any, *columns: Any, where: Any = None) -> Any:
    """`columns` of the customers each asker of `q` sees, with the asker's index; one branch per way of
    seeing, each served by an index; duplicates (a pool customer of one's own team) removed."""
    org = _CT.c.org_id == bindparam("org_id")
    extra = [] if where is None else [where]
    branches = [
        select(q.c.i, *columns).select_from(q).join(_CT, and_(org, _CT.c.team_id == q.c.t, *extra)),
        select(q.c.i, *columns).select_from(q)
        .join(_CT, and_(org, q.c.t.is_not(None), _CT.c.company_pool, _CT.c.owner_id.is_(None), *extra)),
        select(q.c.i, *columns).select_from(q).join(_KT, _KT.c.member_id == q.c.m)
        .join(_CT, and_(org, _CT.c.id == _KT.c.customer_id, *extra)),
    ]
    return union(*branches).subquery("seen")


def _searches(n: int, pg: bool) -> Select[Any]:
    stmt = _SEARCHES.get((n, pg))
    if stmt is None:
        q = _askers(n, _SEARCH_COLUMNS)
        # PostgreSQL's LIKE escapes with a backslash unless told otherwise; spelled out (SQLite needs it), a
        # pattern that is not a constant went through like_escape() once per customer compared.
        escape = {} if pg else {"escape": "\\"}
        matches = or_(_CT.c.norm_name.like(q.c.pn, **escape), _CT.c.name.like(q.c.pr, **escape))
        seen = _seen_by(q, _CT.c.id, _CT.c.norm_name, q.c.n.label("query"), where=matches)
        order = (seen.c.norm_name != seen.c.query, func.length(seen.c.norm_name), seen.c.id)
        ranked = select(seen.c.id, seen.c.i, func.row_number().over(partition_by=seen.c.i, order_by=order).label("rn"))
        ranked_q = ranked.subquery("ranked")
        found = aliased(Customer)
        stmt = _SEARCHES[n, pg] = deferral_safe(
            select(found, ranked_q.c.i).join(ranked_q, ranked_q.c.id == found.id)
            .where(ranked_q.c.rn <= bindparam("limit")).order_by(ranked_q.c.i, ranked_q.c.rn)
        )
    return stmt


def _visible_names(n: int) -> Select[Any]:
    stmt = _NAMES.get(n)
    if stmt is None:
        seen = _seen_by(_askers(n, _NAMES_COLUMNS), _CT.c.id, _CT.c.norm_name, _CT.c.name)
        stmt = _NAMES[n] = deferral_safe(select(seen.c.i, seen.c.id, seen.c.norm_name, seen.c.name))
    return stmt
