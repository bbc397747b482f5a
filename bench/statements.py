"""SQL statements and round trips per hot command, counted with a SQLAlchemy event listener.

    python -m bench.statements --db sqlite
    python -m bench.statements --db postgresql://postgres@127.0.0.1:5432/postgres [--reps 50] [--profile]

Runs the real DingTalk app in this process (tests/dingtalk_support.running_bot against a FakeDingTalk),
lets `--reps` reps each claim a customer in a group of their own, then sends one `跟进` and one `我的` per
rep, one at a time, and counts what each costs the database: statements (per cursor execute), BEGINs and
COMMITs, split into the acknowledgement (signature check + inbound row), the command's transaction and the
outbox delivery, and the CPU time of the command phase (process time while the queue works: one
command at a time, so no batching). Round trips ≈ statements + BEGIN + COMMIT on PostgreSQL (asyncpg runs each as one).
A "burst" phase then acknowledges one message per rep with the queue stopped and lets one worker take
them in batches, as under load (group commit): statements and CPU per command there. `--profile` prints
the top of a cProfile of the command phases (one at a time: cumulative; burst: own time).

The listener lives here, not in production code. Not a test: it shows where statements go.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.adapters.dingtalk import DINGTALK_KEY  # noqa: E402
from storage.database import Database  # noqa: E402
from tests.dingtalk_support import dingtalk_settings, drain, running_bot  # noqa: E402
from tests.fakes.dingtalk import FakeDingTalk  # noqa: E402


class Counting:
    """Statements by kind (first word) and transactions, while `on` is set."""

    def __init__(self, db: Database) -> None:
        self.on = False
        self.kinds: Counter[str] = Counter()
        self.texts: Counter[str] = Counter()
        sync = db.engine.sync_engine
        event.listen(sync, "before_cursor_execute", self._statement)
        event.listen(sync, "begin", self._begin)
        event.listen(sync, "commit", self._commit)

    def _statement(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if self.on:
            self.kinds[statement.split(None, 1)[0].upper()] += 1
            self.texts[" ".join(statement.split())[:110]] += 1

    def _begin(self, conn: Any) -> None:
        if self.on:
            self.kinds["BEGIN"] += 1

    def _commit(self, conn: Any) -> None:
        if self.on:
            self.kinds["COMMIT"] += 1

    def take(self) -> tuple[Counter[str], Counter[str]]:
        kinds, texts = self.kinds, self.texts
        self.kinds, self.texts = Counter(), Counter()
        return kinds, texts


def per(counter: Counter[str], n: int) -> dict[str, float]:
    return {k: round(v / n, 2) for k, v in sorted(counter.items())}


async def _burst(bot: Any, ding: FakeDingTalk, counting: Counting, users: list[tuple[str, str]],
                 text: str, prof: cProfile.Profile | None = None) -> tuple[float, Counter[str]]:
    """Every rep's message acknowledged while the queue is stopped, then worked off in batches (up to
    bot.inbound.BATCH_MAX commands a transaction), as under load: CPU seconds and statements."""
    inbound = bot.app[DINGTALK_KEY]
    await inbound.stop()
    for user, cid in users:
        status, _ = await bot.post_robot(*ding.robot_text_callback(text.format(u=user), user, user,
                                                                   conversation_id=cid))
        assert status == 200, status
    counting.on = True
    counting.take()
    t0 = time.process_time()
    if prof:
        prof.enable()
    inbound.start(workers=1, recover_every=None)
    await inbound.idle()
    if prof:
        prof.disable()
    cpu = time.process_time() - t0
    kinds = counting.take()[0]
    counting.on = False
    await drain(bot.db, bot.deliverer)
    return cpu, kinds


async def run(db: Database, reps: int, profile: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"database": db.engine.dialect.name, "reps": reps}
    async with FakeDingTalk() as ding, running_bot(dingtalk_settings(ding, admins=()), db) as bot:
        inbound = bot.app[DINGTALK_KEY]
        users = [(f"rep{i:03d}", f"cid-{i:03d}") for i in range(reps)]
        for user, cid in users:
            await bot.post_robot(*ding.robot_text_callback(f"认领 客户{user}有限公司 确认", user, user,
                                                           conversation_id=cid))
        # The peer bench's 跟进: one 华为 in the organisation, claimed in the first group, so in every
        # other group the follow-up is refused (找不到客户).
        await bot.post_robot(*ding.robot_text_callback("认领 华为", users[0][0], users[0][0],
                                                       conversation_id=users[0][1]))
        await bot.drain()
        gc.collect()
        gc.freeze()  # as `salesbot serve` does after start-up
        counting = Counting(db)
        for label, text in (("跟进", "跟进 客户{u} 第二次拜访，客户对报价有兴趣"), ("我的", "我的"),
                            ("跟进 refused", "跟进 华为 已报价 50万")):
            # one warm-up round (statement caches), then the measured round
            for measured in (False, True):
                acks: Counter[str] = Counter()
                commands: Counter[str] = Counter()
                deliveries: Counter[str] = Counter()
                texts: Counter[str] = Counter()
                command_cpu = 0.0
                prof = cProfile.Profile(time.process_time) if (profile and measured) else None
                for user, cid in users:
                    counting.on = True
                    status, _ = await bot.post_robot(*ding.robot_text_callback(text.format(u=user), user, user,
                                                                               conversation_id=cid))
                    assert status == 200, status
                    acks.update(counting.take()[0])
                    if prof:
                        prof.enable()
                    t0 = time.process_time()
                    await inbound.idle()
                    command_cpu += time.process_time() - t0
                    if prof:
                        prof.disable()
                    kinds, t = counting.take()
                    commands.update(kinds)
                    texts.update(t)
                    await drain(db, bot.deliverer)
                    deliveries.update(counting.take()[0])
                    counting.on = False
                burst_prof = cProfile.Profile(time.process_time) if (profile and measured) else None
                # The warm-up round bursts too: a batch's statements are shaped by its size (IN lists, the
                # askers of a search), and each shape is compiled once per process.
                burst_cpu, burst = await _burst(bot, ding, counting, users, text, burst_prof)
                if measured:
                    result[label + " burst"] = {"command_cpu_ms": round(burst_cpu * 1000 / reps, 3),
                                                "command": per(burst, reps)}
                    if burst_prof:
                        out = io.StringIO()
                        ours = "bot/|handlers/|storage/"
                        pstats.Stats(burst_prof, stream=out).sort_stats("cumulative").print_stats(ours, 45)
                        result[label + " burst"]["profile"] = out.getvalue()
                    result[label] = {
                        "command_cpu_ms": round(command_cpu * 1000 / reps, 3),
                        "acknowledgement": per(acks, reps), "command": per(commands, reps),
                        "delivery": per(deliveries, reps),
                        "command_statements": {k: round(v / reps, 2) for k, v in texts.most_common()},
                    }
                    if prof:
                        out = io.StringIO()
                        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(40)
                        result[label]["profile"] = out.getvalue()
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite", help="sqlite, or a postgresql:// URL (a bench database is made)")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    name = base = ""
    if args.db == "sqlite":
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='salesbot-stmts-')}/bench.db"
    else:
        import asyncpg  # type: ignore[import-untyped]

        base = args.db.replace("postgresql+asyncpg://", "postgresql://")
        name = f"salesbot_stmts_{os.getpid()}"
        admin = await asyncpg.connect(base)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = urlunsplit(urlsplit(base)._replace(scheme="postgresql+asyncpg", path="/" + name))
    db = Database.from_url(url)
    try:
        if name:
            from storage.migrate import upgrade

            await upgrade(db.engine)
        await db.prepare()
        result = await run(db, args.reps, args.profile)
    finally:
        await db.close()
        if name:
            import asyncpg

            admin = await asyncpg.connect(base)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    profiles = {k: v.pop("profile") for k, v in result.items() if isinstance(v, dict) and "profile" in v}
    print(json.dumps(result, ensure_ascii=False, indent=2))
    for label, text in profiles.items():
        print(f"--- profile: {label}\n{text}")


if __name__ == "__main__":
    asyncio.run(main())
