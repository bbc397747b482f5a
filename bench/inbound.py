"""Inbound benchmark: signed DingTalk robot callbacks over loopback against the real `salesbot serve`.

    python -m bench.inbound --db sqlite --concurrency 20 --requests 3000      # closed loop: throughput
    python -m bench.inbound --db sqlite --rate 300 --requests 3000            # open loop: p99 at 300 req/s
    python -m bench.inbound --db postgresql://postgres@127.0.0.1:5432/postgres --rate 300
    python -m bench.inbound --db postgresql://… --workers 2                    # serve --workers 2
    python -m bench.inbound --db postgresql://… --rate 300 --platform-latency-ms 100   # a platform 100 ms away

Starts a FakeDingTalk (tests/fakes/dingtalk.py) in this process, `python -m bot.cli serve` in a subprocess
whose configuration points every DingTalk URL at the fake, and a bare aiohttp server that only checks the
signature (the floor). Each callback carries a fresh sessionWebhook, so the reply the real outbox worker
posts there is matched to its request: "reply" latency runs from sending the callback to the fake
receiving the reply. Prints JSON: requests/s, p50/p90/p99 of the HTTP answer and of the reply for a
writing command (跟进 …) and a reading one (我的), server CPU time per request (outbox work included),
where the rest of the machine's CPU went (this process — load generator and fake — and everything else:
PostgreSQL and the kernel), idle and peak RSS, and the ratio to the bare handler.

Each measured phase is preceded by `--warm-up` requests (default 300) of its own kind at the same rate or
concurrency, not measured: the first use of a statement on each pooled connection prepares it, a one-off
of a fresh process rather than what users see.

Every rep talks in a group of their own, and there are enough groups that none gets over DingTalk's
20 robot messages a minute: the outbox honours that limit, and a bench that ignored it would measure the
limiter. Not a test: numbers depend on the machine (and on this process, which drives the load and plays
DingTalk on the same cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.dingtalk import FakeDingTalk  # noqa: E402

BARE = r'''
import base64, hashlib, hmac, sys, time
from aiohttp import web
SECRET = sys.argv[2]
async def handle(request):
    ts, sig = request.headers.get("timestamp", ""), request.headers.get("sign", "")
    if not ts.isdigit() or abs(time.time() * 1000 - int(ts)) > 3600000:
        return web.Response(status=403)
    good = base64.b64encode(hmac.new(SECRET.encode(), f"{ts}\n{SECRET}".encode(), hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(sig.encode(), good.encode()):
        return web.Response(status=401)
    await request.read()
    return web.json_response({})
app = web.Application(client_max_size=65536)
app.router.add_post("/dingtalk/robot", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
'''

MESSAGES_PER_GROUP = 12  # DingTalk: 20 robot messages a minute per group; a margin (the limiter plans ahead)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the workers of `serve --workers N`)."""
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for child in f.read().split():
                pids.extend(proc_tree(int(child)))
    except OSError:
        pass
    return pids


def tree_stats(pid: int) -> dict[str, float]:
    """CPU seconds and RSS summed over the process tree (max RSS of one process kept too)."""
    stats = [proc_stats(p) for p in proc_tree(pid)]
    return {"cpu_s": sum(s["cpu_s"] for s in stats), "rss_mb": sum(s["rss_mb"] for s in stats),
            "peak_rss_mb": sum(s["peak_rss_mb"] for s in stats), "max_process_rss_mb": max(s["rss_mb"] for s in stats),
            "processes": len(stats)}


def proc_stats(pid: int) -> dict[str, float]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = hwm = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return {"cpu_s": cpu, "rss_mb": rss, "peak_rss_mb": hwm}


def machine_cpu_s() -> float:
    """CPU seconds spent by the whole machine (all cores, every process, the kernel) so far."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def self_cpu_s() -> float:
    """CPU seconds of this process: the load generator and the fake DingTalk."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def wait_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server at {url} did not start")


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000, 2)


def session_of(body: bytes) -> str:
    url = json.loads(body)["sessionWebhook"]
    return parse_qs(urlsplit(url).query)["session"][0]


async def drive(url: str, ding: FakeDingTalk | None, texts: list[tuple[str, str, str]], concurrency: int,
                rate: float | None, sign_only: FakeDingTalk | None = None) -> dict[str, Any]:
    """POST one signed callback per (text, staff id, conversation id) and time the answers and the replies.

    Closed loop (`rate` None): `concurrency` requests in flight at all times. Open loop: one request
    every 1/rate s whatever the server does, so a slow server shows up as latency, not as fewer requests.
    """
    source = ding or sign_only
    assert source is not None
    latencies: list[float] = []
    sent_at: dict[str, float] = {}
    errors = 0
    prepared = [source.robot_text_callback(text, staff, staff, conversation_id=cid, conversation_title=f"组{cid}")
                for text, staff, cid in texts]
    conn = aiohttp.TCPConnector(limit=concurrency if rate is None else 0)
    replies_before = len(ding.session_messages()) if ding else 0

    async def one(headers: dict[str, str], body: bytes) -> None:
        nonlocal errors
        t0 = time.monotonic()
        if ding is not None:
            sent_at[session_of(body)] = t0
        try:
            async with http.post(url, headers=headers, data=body) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
        except aiohttp.ClientError:
            errors += 1
        latencies.append(time.monotonic() - t0)

    start = time.monotonic()
    async with aiohttp.ClientSession(connector=conn) as http:
        if rate is None:
            items = iter(prepared)

            async def worker() -> None:
                for headers, body in items:
                    await one(headers, body)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        else:
            tasks = []
            for index, (headers, body) in enumerate(prepared):
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(headers, body)))
            await asyncio.gather(*tasks)
    answered = time.monotonic()
    result: dict[str, Any] = {
        "requests": len(latencies), "errors": errors, "seconds": round(answered - start, 3),
        "rps": round(len(latencies) / (answered - start), 1),
        "http_p50_ms": pct(latencies, 50), "http_p90_ms": pct(latencies, 90), "http_p99_ms": pct(latencies, 99),
    }
    if ding is not None:
        want = replies_before + len(texts)
        try:
            await ding.wait_for(lambda: len(ding.session_messages()) >= want, timeout=120)
        except TimeoutError:
            result["replies_missing"] = want - len(ding.session_messages())
        reply = [
            r.time - sent_at[r.query["session"]] for r in ding.session_messages() if r.query.get("session") in sent_at
        ]
        result.update({"replies": len(reply), "reply_p50_ms": pct(reply, 50), "reply_p90_ms": pct(reply, 90),
                       "reply_p99_ms": pct(reply, 99),
                       "commands_with_reply_per_s": round(len(reply) / (time.monotonic() - start), 1)})
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite", help="sqlite, or a postgresql:// URL (a bench database is created)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per phase (write, read)")
    parser.add_argument("--concurrency", type=int, default=20, help="closed loop: requests in flight")
    parser.add_argument("--rate", type=float, default=None, help="open loop: requests per second")
    parser.add_argument("--warm-up", type=int, default=300,
                        help="requests of each phase's kind sent first and not measured (statements get prepared)")
    parser.add_argument("--no-bare", action="store_true", help="skip the signature-only floor")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers N (PostgreSQL only)")
    parser.add_argument("--platform-latency-ms", type=float, default=0.0,
                        help="how long the fake platform takes to answer each call (the internet's round trip)")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="salesbot-bench-")
    name = base = ""
    if args.db == "sqlite":
        db_url = f"sqlite:///{tmp}/bench.db"
    else:
        import asyncpg  # type: ignore[import-untyped]

        base = args.db.replace("postgresql+asyncpg://", "postgresql://")
        admin = await asyncpg.connect(base)
        name = f"salesbot_bench_{os.getpid()}"
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        db_url = urlunsplit(urlsplit(base)._replace(path="/" + name))  # keeps ?host=/run/postgresql (a socket)
    async with FakeDingTalk() as ding:
        ding.answer_delay = args.platform_latency_ms / 1000
        env = {**os.environ, "SALESBOT_DATABASE_URL": db_url, "SALESBOT_DINGTALK_APP_KEY": ding.app_key,
               "SALESBOT_DINGTALK_APP_SECRET": ding.app_secret, "SALESBOT_DINGTALK_OAPI_BASE": ding.oapi_base,
               "SALESBOT_DINGTALK_API_BASE": ding.api_base, "SALESBOT_LOG_LEVEL": "WARNING"}
        if args.db != "sqlite":
            subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade", "--db", db_url], cwd=ROOT, env=env,
                           check=True, stdout=subprocess.DEVNULL)
        port, bare_port = free_port(), free_port()
        server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port),
                                   "--workers", str(args.workers)], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL)
        bare = None if args.no_bare else subprocess.Popen(
            [sys.executable, "-c", BARE, str(bare_port), ding.app_secret], stdout=subprocess.DEVNULL)
        try:
            await wait_up(f"http://127.0.0.1:{port}/healthz")
            if args.workers > 1:
                await asyncio.sleep(5)  # healthz answers once the first worker is up; let the others start
            if bare is not None:
                await wait_up(f"http://127.0.0.1:{bare_port}/dingtalk/robot")
            url = f"http://127.0.0.1:{port}/dingtalk/robot"
            n = args.requests
            w = args.warm_up
            groups = max(40, math.ceil((2 * (n + w)) / (MESSAGES_PER_GROUP - 1)))
            reps = [(f"rep{i:04d}", f"cid-{i:04d}") for i in range(groups)]
            # Warm-up: every rep claims one customer in their group (teams, members, first rows). The names
            # differ by one digit and customers are organisation-wide, so each claim confirms the look-alike.
            warm = await drive(url, ding, [(f"认领 客户{u}有限公司 确认", u, c) for u, c in reps], 10, None)
            if args.db != "sqlite":
                # A fresh database has no planner statistics; autovacuum would gather them within a minute,
                # but a test machine may run PostgreSQL with autovacuum off. Without them the planner
                # scans `members` for every command once it has a few hundred rows.
                import asyncpg

                conn = await asyncpg.connect(db_url)
                await conn.execute("ANALYZE")
                await conn.close()
            idle = tree_stats(server.pid)
            writes = [
                (f"跟进 客户{reps[i % groups][0]} 第{i}次拜访，客户对报价有兴趣", *reps[i % groups])
                for i in range(n + w)
            ]
            reads = [("我的", *reps[(i + groups // 2) % groups]) for i in range(n + w)]
            # Each phase starts with `w` requests of its own kind, not measured: the first use of a
            # statement on each pooled connection prepares it, which is start-up, not steady state.
            if w:
                await drive(url, ding, writes[n:], args.concurrency, args.rate)
            before, machine0, self0 = tree_stats(server.pid), machine_cpu_s(), self_cpu_s()
            write = await drive(url, ding, writes[:n], args.concurrency, args.rate)
            mid, machine1, self1 = tree_stats(server.pid), machine_cpu_s(), self_cpu_s()
            if w:
                await drive(url, ding, reads[n:], args.concurrency, args.rate)
            mid_read, machine1r, self1r = tree_stats(server.pid), machine_cpu_s(), self_cpu_s()
            read = await drive(url, ding, reads[:n], args.concurrency, args.rate)
            after, machine2, self2 = tree_stats(server.pid), machine_cpu_s(), self_cpu_s()
            # Where the machine's CPU went, per request: the server, this process (load generator and
            # fake DingTalk), and the rest — PostgreSQL and the kernel, on an otherwise quiet machine.
            for phase, server_s, own_s, all_s in (
                (write, mid["cpu_s"] - before["cpu_s"], self1 - self0, machine1 - machine0),
                (read, after["cpu_s"] - mid_read["cpu_s"], self2 - self1r, machine2 - machine1r),
            ):
                n = max(phase["requests"], 1)
                phase["server_cpu_ms_per_request"] = round(server_s * 1000 / n, 3)
                phase["load_generator_and_fake_cpu_ms_per_request"] = round(own_s * 1000 / n, 3)
                phase["machine_cpu_ms_per_request"] = round(all_s * 1000 / n, 3)
                phase["rest_cpu_ms_per_request"] = round((all_s - server_s - own_s) * 1000 / n, 3)
            result: dict[str, Any] = {
                "database": "sqlite" if args.db == "sqlite" else "postgresql",
                "mode": (
                    f"open loop {args.rate:g} req/s" if args.rate else f"closed loop, concurrency {args.concurrency}"
                ),
                "groups": groups, "warm_up_errors": warm["errors"],
                "write_跟进": write, "read_我的": read,
            }
            if bare is not None:
                b0 = proc_stats(bare.pid)
                floor = await drive(f"http://127.0.0.1:{bare_port}/dingtalk/robot", None, writes[:n], args.concurrency,
                                    args.rate, sign_only=ding)
                floor["server_cpu_ms_per_request"] = round(
                    (proc_stats(bare.pid)["cpu_s"] - b0["cpu_s"]) * 1000 / max(floor["requests"], 1), 3)
                result["bare_signature_only"] = floor
                result["ratio_write_rps_to_bare"] = round(write["rps"] / floor["rps"], 3)
                result["ratio_read_rps_to_bare"] = round(read["rps"] / floor["rps"], 3)
            result["server_processes"] = idle["processes"]
            result["idle_rss_mb"] = round(idle["rss_mb"], 1)
            result["idle_rss_mb_per_process_max"] = round(idle["max_process_rss_mb"], 1)
            result["peak_rss_mb"] = round(after["peak_rss_mb"], 1)
            print(json.dumps(result, ensure_ascii=False, indent=2))
        finally:
            for proc in (server, bare):
                if proc is not None:
                    proc.terminate()
                    proc.wait(10)
            if name:
                import asyncpg

                admin = await asyncpg.connect(base)
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
