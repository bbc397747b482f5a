"""Benchmark: time to build one team's daily digest and weekly retro on PostgreSQL.

Seeds one organisation with 50 teams × 20 reps, 200,000 customers and 2,000,000 follow-ups (COPY via
asyncpg into a dedicated schema), and the same at one tenth. The tenth keeps the same *daily activity*
over a tenth of the history (73 days instead of 730), so comparing the two shows whether a report's
cost follows the period's activity or the size of history. Prints JSON; drops its schemas afterwards.

    SALESBOT_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test python -m bench.reports [--tenth]

The data is the ledger's model: deals moved by follow-ups, every move a deal event (opened, stage,
amount, won, lost, unwon), credit rows for every win (a fifth split 60/40) and un-win. It also times
the month's goal progress (看板) and `pipeline_at` the week's and the month's start.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from schedules.jobs import TeamSchedule
from schedules.runners import build_digest, build_retro, week_start_of
from storage import migrate
from storage.database import Database
from storage.engine import create_engine
from storage.goals import goal_progress, local_bounds, month_bounds
from storage.ledger import pipeline_at
from storage.schedule_store import all_teams

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # 18:00 Asia/Shanghai, a Friday
TEAMS, REPS = 50, 20
STAGES = ("线索", "初访", "需求确认", "报价", "谈判")


def _naive(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None)


async def seed(pg_url: str, schema: str, customers: int, followups: int, history_days: int) -> None:
    rnd = random.Random(42)
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": schema})
    try:
        t0 = _naive(NOW - timedelta(days=history_days))
        span = history_days * 86400

        def when() -> datetime:
            return t0 + timedelta(seconds=rnd.random() * span)

        await conn.copy_records_to_table(
            "organisations", records=[(1, "console", "bench", "bench", "Asia/Shanghai", t0)],
            columns=["id", "platform", "corp_key", "name", "timezone", "created_at"],
        )
        await conn.copy_records_to_table(
            "teams",
            records=[(t, 1, f"chat-{t}", f"团队{t}", 0, 50, 7, "{}", t0) for t in range(1, TEAMS + 1)],
            columns=[
                "id", "org_id", "chat_id", "name", "help_seq", "max_active_customers", "cooldown_days", "settings",
                "created_at",
            ],
        )
        members = [(m, 1, f"u{m}", f"成员{m}", False, True, t0) for m in range(1, TEAMS * REPS + 1)]
        await conn.copy_records_to_table(
            "members", records=members, columns=["id", "org_id", "user_id", "name", "is_admin", "active", "created_at"]
        )
        await conn.copy_records_to_table(
            "memberships",
            records=[
                ((m - 1) // REPS + 1, m, "lead" if (m - 1) % REPS == 0 else "rep", t0)
                for m in range(1, TEAMS * REPS + 1)
            ],
            columns=["team_id", "member_id", "role", "joined_at"],
        )
        cust_team: list[int] = []
        rows = []
        deals = []
        audit = []
        # The new model: each customer has one deal whose state the follow-ups move; every move is a deal
        # event (opened, stage, amount, won, lost, unwon) and every win and un-win writes credit rows.
        state: dict[int, list] = {}  # deal id → [stage, amount, status, closed_at, owner]
        events: list[tuple] = []
        credits: list[tuple] = []
        last_wins: dict[int, list[tuple]] = {}  # deal id → its standing win's credit rows
        for c in range(1, customers + 1):
            team = (c - 1) % TEAMS + 1
            owner = (team - 1) * REPS + rnd.randrange(REPS) + 1
            # Rows go in in time order, as a live system writes them; last activity is recent for
            # worked customers, and a customer idle past 30 days is already back in the pool.
            created = t0 + timedelta(seconds=span * (c - 1) / customers)
            last = max(created, _naive(NOW) - timedelta(days=rnd.expovariate(1 / 12)))
            held = owner if last > _naive(NOW) - timedelta(days=30) else None
            name = f"客户{c}"
            rows.append((c, 1, team, name, name, held, created, last, None, created))
            amount = rnd.randrange(1, 500) * 1_000_000 if rnd.random() < 0.5 else None
            deals.append((c, 1, team, c, "首单", "线索", amount, "open", None, created))
            state[c] = ["线索", amount, "open", None, owner]
            events.append((len(events) + 1, 1, team, c, c, "opened", None, "线索", amount, owner, owner, created))
            audit.append((c, 1, team, owner, "claim", "customer", c, created))
            cust_team.append(team)
        await conn.copy_records_to_table(
            "customers", records=rows,
            columns=[
                "id", "org_id", "team_id", "name", "norm_name", "owner_id",
                "claimed_at", "last_activity_at", "next_followup_on", "created_at",
            ],
        )
        deal_columns = [
            "id", "org_id", "team_id", "customer_id", "name", "stage", "amount_fen", "status", "closed_at", "created_at"
        ]
        await conn.copy_records_to_table("deals", records=deals, columns=deal_columns)
        await conn.copy_records_to_table(
            "audit_log",
            records=audit,
            columns=["id", "org_id", "team_id", "actor_id", "action", "entity", "entity_id", "created_at"],
        )
        del rows, deals, audit
        followup_columns = [
            "id", "org_id", "team_id", "customer_id", "deal_id", "author_id", "content", "stage_before",
            "stage_after", "amount_fen", "created_at",
        ]
        batch: list[tuple] = []
        for f in range(1, followups + 1):
            created_f = t0 + timedelta(seconds=span * (f - 1) / followups)
            c = rnd.randrange(max(int(customers * (f / followups)), 1)) + 1  # only customers that exist by then
            team = cust_team[c - 1]
            author = (team - 1) * REPS + rnd.randrange(REPS) + 1
            stage, amount, status, _, owner = state[c]
            kind, after, new_amount = _move(rnd, status)
            if new_amount is not None:
                amount = new_amount
            if kind:
                before = stage
                stage = {"won": "赢单", "lost": "输单", "unwon": "谈判"}.get(kind, after or stage)
                event_id = len(events) + 1
                events.append((event_id, 1, team, c, c, kind, before, stage, amount, owner, author, created_f))
                if kind in ("won", "unwon"):
                    credits += _credits(rnd, last_wins, kind, event_id, team, c, owner, amount or 0, created_f)
                status = {"won": "won", "lost": "lost", "unwon": "open"}.get(kind, status)
                state[c] = [stage, amount, status, created_f if status != "open" else None, owner]
            batch.append((f, 1, team, c, c, author, "跟进", None, after, new_amount, created_f))
            if len(batch) >= 200_000:
                await conn.copy_records_to_table("followups", records=batch, columns=followup_columns)
                batch = []
        if batch:
            await conn.copy_records_to_table("followups", records=batch, columns=followup_columns)
        event_columns = [
            "id", "org_id", "team_id", "deal_id", "customer_id", "kind", "stage_before", "stage_after", "amount_fen",
            "owner_id", "actor_id", "created_at",
        ]
        for i in range(0, len(events), 200_000):
            await conn.copy_records_to_table("deal_events", records=events[i : i + 200_000], columns=event_columns)
        await conn.copy_records_to_table(
            "deal_credits", records=credits,
            columns=["org_id", "team_id", "deal_id", "event_id", "member_id", "amount_fen", "share_bp", "created_at"],
        )
        await conn.execute("SELECT setval(pg_get_serial_sequence('deal_events', 'id'), $1)", len(events))
        # The deals' final state, as the events left them (one UPDATE from a temporary table).
        await conn.execute(
            "CREATE TEMP TABLE final_deals (id int, stage varchar(16), amount_fen bigint, status varchar(8), "
            "closed_at timestamp)"
        )
        await conn.copy_records_to_table(
            "final_deals", records=[(d, s[0], s[1], s[2], s[3]) for d, s in state.items()],
            columns=["id", "stage", "amount_fen", "status", "closed_at"],
        )
        await conn.execute(
            "UPDATE deals SET stage = f.stage, amount_fen = f.amount_fen, status = f.status, closed_at = f.closed_at "
            "FROM final_deals f WHERE f.id = deals.id"
        )
        del events, credits, state, last_wins
        helps = []
        for team in range(1, TEAMS + 1):
            for n in range(1, max(history_days // 7, 2) + 1):
                created = when()
                taken = created + timedelta(hours=rnd.random() * 8) if rnd.random() < 0.8 else None
                if created < _naive(NOW) - timedelta(days=14):  # old requests were dealt with long ago
                    taken = taken or created + timedelta(hours=2)
                settled = taken and (rnd.random() < 0.7 or created < _naive(NOW) - timedelta(days=14))
                resolved = taken + timedelta(hours=rnd.random() * 24) if settled else None
                status = "resolved" if resolved else ("taken" if taken else "open")
                requester = (team - 1) * REPS + rnd.randrange(REPS) + 1
                helper = (team - 1) * REPS + rnd.randrange(REPS) + 1 if taken else None
                helps.append((1, team, n, requester, helper, "求助", status, created, taken, resolved))
        await conn.copy_records_to_table(
            "help_requests", records=helps,
            columns=[
                "org_id", "team_id", "number", "requester_id", "helper_id", "content", "status", "created_at",
                "taken_at", "resolved_at",
            ],
        )
        for table in (
            "customers", "followups", "audit_log", "help_requests", "members", "memberships", "teams", "deals",
            "deal_events", "deal_credits",
        ):
            # What autovacuum does on a live database: statistics, and a visibility map for index-only scans.
            await conn.execute(f"VACUUM ANALYZE {table}")
    finally:
        await conn.close()


def _move(rnd: random.Random, status: str) -> tuple[str | None, str | None, int | None]:
    """What one follow-up does to its deal: (event kind, stage written on the follow-up, new amount)."""
    r = rnd.random()
    if status == "won":
        return ("unwon", "谈判", None) if r < 0.02 else (None, None, None)
    if status == "lost":
        return None, None, None
    if r < 0.01:
        return "won", "赢单", rnd.randrange(1, 500) * 1_000_000
    if r < 0.015:
        return "lost", "输单", None
    if r < 0.06:
        return "stage", rnd.choice(STAGES), None
    if r < 0.10:
        return "amount", None, rnd.randrange(1, 500) * 1_000_000
    return None, None, None


def _credits(
    rnd: random.Random, wins: dict[int, list[tuple]], kind: str, event_id: int, team: int, deal: int, owner: int,
    amount: int, at: datetime,
) -> list[tuple]:
    """A win's credit rows (a fifth of wins split 60/40 with a teammate), or an un-win's: the last win's negated."""
    if kind == "unwon":
        return [(1, team, deal, event_id, r[4], -r[5], r[6], at) for r in wins.pop(deal, [])]
    rows = [(1, team, deal, event_id, owner, amount, 10000, at)]
    mate = (team - 1) * REPS + rnd.randrange(REPS) + 1
    if rnd.random() < 0.2 and mate != owner:
        first = amount * 6 // 10
        rows = [(1, team, deal, event_id, owner, first, 6000, at), (1, team, deal, event_id, mate, amount - first, 4000,
                                                                    at)]
    wins[deal] = rows
    return rows


async def measure(db: Database, team_id: int, runs: int = 15) -> dict[str, float]:
    """Median of `runs` builds (after one warm-up) of the digest, the retro, the month's goal progress (看板)
    and the pipeline as it stood at the week's and the month's start (storage.ledger.pipeline_at)."""
    timings: dict[str, list[float]] = {k: [] for k in ("digest_ms", "retro_ms", "board_ms", "pipeline_week_ms",
                                                       "pipeline_month_ms")}
    for i in range(runs + 1):
        async with db.transaction() as store:
            [(org, team)] = await all_teams(store, team_id)
            store.bind_team(org, team)
            schedule = TeamSchedule.of(team.settings, org.timezone)
            today = schedule.today(NOW)
            week = week_start_of(today)
            steps = {
                "digest_ms": build_digest(store, today, schedule, NOW),
                "retro_ms": build_retro(store, week, schedule, NOW),
                "board_ms": goal_progress(store, f"{today:%Y-%m}"),
                "pipeline_week_ms": pipeline_at(store, local_bounds(store, week, today)[0]),
                "pipeline_month_ms": pipeline_at(store, month_bounds(store, f"{today:%Y-%m}")[0]),
            }
            for key, step in steps.items():
                t = time.perf_counter()
                await step
                if i:  # the first run warms the connection and the plan caches
                    timings[key].append((time.perf_counter() - t) * 1000)
    return {k: round(statistics.median(v), 1) for k, v in timings.items()}


async def run_scale(url: str, name: str, customers: int, followups: int, history_days: int) -> dict[str, object]:
    raw = url.replace("postgresql+asyncpg://", "postgresql://")
    schema = f"bench_{name}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(raw)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        engine = create_engine(url, connect_args={"server_settings": {"search_path": schema}})
        await migrate.upgrade(engine)
        t = time.perf_counter()
        await seed(raw, schema, customers, followups, history_days)
        seeded = time.perf_counter() - t
        db = Database(engine)
        try:
            figures = await measure(db, team_id=7)
        finally:
            await db.close()
        return {
            "customers": customers,
            "followups": followups,
            "history_days": history_days,
            "seed_s": round(seeded, 1),
            **figures,
        }
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


async def main() -> int:
    url = os.environ.get("SALESBOT_BENCH_PG_URL") or os.environ.get("SALESBOT_TEST_PG_URL")
    if not url:
        print("set SALESBOT_BENCH_PG_URL=postgresql+asyncpg://…", file=sys.stderr)
        return 2
    tenth = await run_scale(url, "tenth", 20_000, 200_000, 73)
    if "--tenth" in sys.argv:
        print(json.dumps({"tenth": tenth}, ensure_ascii=False, indent=2))
        return 0
    full = await run_scale(url, "full", 200_000, 2_000_000, 730)
    result = {
        "teams": TEAMS,
        "reps_per_team": REPS,
        "full": full,
        "tenth": tenth,
        "ratio_full_to_tenth": {
            k: round(float(full[k]) / max(float(tenth[k]), 0.001), 2)  # type: ignore[arg-type]
            for k in ("digest_ms", "retro_ms", "board_ms", "pipeline_week_ms", "pipeline_month_ms")
        },
        "targets": {"digest_ms": 100, "retro_ms": 300, "max_ratio": 1.5},
    }
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
