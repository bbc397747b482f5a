"""Seen DingTalk robot signatures: a (timestamp, sign) pair is good for one msgId.

DingTalk signs a robot callback with HMAC(appSecret, timestamp + "\\n" + appSecret): the body is not
covered, so whoever captured one callback could send any body with its headers for the whole timestamp
window. The first msgId a pair arrives with is recorded here (unique on the signature, so it holds across
processes and replicas); the pair coming back with that msgId is DingTalk's re-delivery (answered as a
duplicate by the inbound row), with another msgId it is refused.

This is on the acknowledgement's hot path: a new pair costs one INSERT … ON CONFLICT DO NOTHING (on
PostgreSQL autocommitted, one round trip); only a pair already seen costs the SELECT that tells a
re-delivery from a replay.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.models import RobotSignature
from storage.sql import insert_for, rowcount, table_of

_signatures = table_of(RobotSignature)
_FIRST_MSG_ID = select(_signatures.c.msg_id).where(_signatures.c.sign == bindparam("sign"))


async def admit_robot_signature(engine: AsyncEngine, sign: str, timestamp_ms: int, msg_id: str,
                                now: datetime) -> bool:
    """True when the pair is new (now recorded with `msg_id`) or was first seen with this same `msg_id`;
    False when it came before with another msgId — a replayed signature carrying a forged body."""
    values = {"sign": sign, "timestamp": timestamp_ms, "msg_id": msg_id, "seen_at": now}
    if engine.dialect.name == "sqlite":
        async with engine.begin() as conn:
            return await _admit(conn, values)
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return await _admit(conn, values)


async def _admit(conn: AsyncConnection, values: dict[str, object]) -> bool:
    result = await conn.execute(insert_for(conn.dialect.name, _signatures, ("sign",)), values)
    if rowcount(result):
        return True
    first = (await conn.execute(_FIRST_MSG_ID, {"sign": values["sign"]})).scalar_one_or_none()
    # None: the row was pruned between the two statements — only ever past the window, which the
    # timestamp check refuses before this is asked.
    return first is None or first == values["msg_id"]
