"""DingTalk's 20 messages a minute per group hold across replicas sharing PostgreSQL, and a worker's pass
to many groups takes its slots in one statement (storage.send_windows)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, select

from storage.database import Database
from storage.models import SendWindow
from storage.send_windows import SendWindows

LIMIT, WINDOW, NOW = 3, 60.0, 1_000_000.0
KEYS = [f"dingtalk:chat:cid-{n}" for n in range(20)]


def _taking(want: int, granted: list[int]) -> Any:
    """A `change` that takes up to `want` slots under LIMIT; `granted` learns what the last call took."""

    def change(sent: list[float]) -> list[float] | None:
        take = min(want, LIMIT - len(sent))
        granted[0] = take
        return [*sent, *[NOW] * take] if take > 0 else None

    return change


async def _take(windows: SendWindows, key: str, want: int) -> int:
    granted = [0]
    return granted[0] if await windows.update(key, NOW, WINDOW, _taking(want, granted)) else 0


async def test_two_replicas_taking_slots_of_many_groups_at_once_never_pass_the_limit(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("the windows are shared through PostgreSQL; SQLite runs one process")
    one, two = SendWindows(db.engine), SendWindows(db.engine)
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, stmt, *rest: statements.append(stmt))
    first = await asyncio.gather(*(_take(one, key, 1) for key in KEYS))  # each key's row is created
    assert first == [1] * len(KEYS)
    statements.clear()
    second = await asyncio.gather(*(_take(one, key, 1) for key in KEYS))  # what `one` remembers is current
    assert second == [1] * len(KEYS)
    swaps = [s for s in statements if s.startswith("UPDATE send_windows")]
    assert len(swaps) <= 3 and any("unnest" in s for s in swaps)  # a pass, not one statement per group
    # Both replicas now ask for more than is left; `two` has never seen these keys, `one` saw them.
    taken = await asyncio.gather(*(_take(w, key, 2) for key in KEYS for w in (one, two, one)))
    per_key = [sum(taken[i * 3:(i + 1) * 3]) for i in range(len(KEYS))]
    assert per_key == [LIMIT - 2] * len(KEYS)
    async with db.session() as session:
        rows = (await session.execute(select(SendWindow.limit_key, SendWindow.sent))).all()
    assert sorted(len(sent) for _, sent in rows) == [LIMIT] * len(KEYS)
    for replica in (one, two):  # each replica's own connections, back before the database closes
        await replica.direct.close()
