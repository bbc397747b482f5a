"""Inbound benchmark: signed DingTalk robot callbacks over loopback against the real `salesbot serve`.

    python -m bench.inbound --db sqlite --concurrency 50 --requests 3000
    python -m bench.inbound --db postgresql://postgres@127.0.0.1:5432/postgres --rate 300

Starts a FakeDingTalk (for sessionWebhooks), `python -m bot.cli serve` in a subprocess configured for it,
and a bare aiohttp server that only checks the signature (the floor). Prints JSON: requests/s, HTTP
answer latency p50/p90/p99 for a writing command (跟进 …) and a reading one (我的), server CPU time per
request, idle and peak RSS, and the ratio to the bare handler. Reply latency (command → sessionWebhook)
needs the outbox worker (branch `outbox`); until it merges it is reported as null.
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


async def wait_up(url: str, timeout: float = 20) -> None:
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


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000, 2)


async def drive(url: str, ding: FakeDingTalk, texts: list[tuple[str, str]], concurrency: int, rate: float | None) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
    for item in texts:
        queue.put_nowait(item)
    interval = 1 / rate if rate else 0.0
    start = time.perf_counter()
    sent = 0
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as http:
        async def worker() -> None:
            nonlocal errors, sent
            while True:
                try:
                    text, staff = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if interval:
                    index = sent
                    sent += 1
                    delay = start + index * interval - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                headers, body = ding.robot_text_callback(text, staff, staff, conversation_id=f"cid-{staff[-1]}")
                t0 = time.perf_counter()
                async with http.post(url, headers=headers, data=body) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {"requests": len(latencies), "errors": errors, "seconds": round(elapsed, 3),
            "rps": round(len(latencies) / elapsed, 1),
            "http_p50_ms": pct(latencies, 50), "http_p90_ms": pct(latencies, 90), "http_p99_ms": pct(latencies, 99)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="sqlite", help="sqlite, or a postgresql:// URL (a bench database is created)")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rate", type=float, default=None, help="open-loop requests per second (default: as fast as possible)")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="salesbot-bench-")
    if args.db == "sqlite":
        db_url = f"sqlite:///{tmp}/bench.db"
    else:
        import asyncpg  # type: ignore[import-untyped]

        base = args.db.replace("postgresql+asyncpg://", "postgresql://")
        admin = await asyncpg.connect(base)
        name = f"salesbot_bench_{os.getpid()}"
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        db_url = base.rsplit("/", 1)[0] + "/" + name
    async with FakeDingTalk() as ding:
        env = {**os.environ, "SALESBOT_DATABASE_URL": db_url, "SALESBOT_DINGTALK_APP_KEY": ding.app_key,
               "SALESBOT_DINGTALK_APP_SECRET": ding.app_secret, "SALESBOT_DINGTALK_OAPI_BASE": ding.oapi_base,
               "SALESBOT_DINGTALK_API_BASE": ding.api_base, "SALESBOT_LOG_LEVEL": "WARNING"}
        if args.db != "sqlite":
            subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade", "--db", db_url], cwd=ROOT, env=env, check=True,
                           stdout=subprocess.DEVNULL)
        port, bare_port = free_port(), free_port()
        server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        bare = subprocess.Popen([sys.executable, "-c", BARE, str(bare_port), ding.app_secret], stdout=subprocess.DEVNULL)
        try:
            await wait_up(f"http://127.0.0.1:{port}/healthz")
            await wait_up(f"http://127.0.0.1:{bare_port}/dingtalk/robot")
            url = f"http://127.0.0.1:{port}/dingtalk/robot"
            users = [f"rep{i:02d}{i % 4}" for i in range(40)]
            # Warm-up: every rep claims one customer (and the tables get their first rows).
            await drive(url, ding, [(f"认领 客户{u}有限公司", u) for u in users], 10, None)
            idle = proc_stats(server.pid)
            n = args.requests
            writes = [(f"跟进 客户{users[i % 40]} 第{i}次拜访，客户对报价有兴趣", users[i % 40]) for i in range(n)]
            reads = [("我的", users[i % 40]) for i in range(n)]
            before = proc_stats(server.pid)
            write = await drive(url, ding, writes, args.concurrency, args.rate)
            mid = proc_stats(server.pid)
            read = await drive(url, ding, reads, args.concurrency, args.rate)
            after = proc_stats(server.pid)
            write["server_cpu_ms_per_request"] = round((mid["cpu_s"] - before["cpu_s"]) * 1000 / max(write["requests"], 1), 3)
            read["server_cpu_ms_per_request"] = round((after["cpu_s"] - mid["cpu_s"]) * 1000 / max(read["requests"], 1), 3)
            bare_url = f"http://127.0.0.1:{bare_port}/dingtalk/robot"
            b0 = proc_stats(bare.pid)
            floor = await drive(bare_url, ding, writes, args.concurrency, args.rate)
            floor["server_cpu_ms_per_request"] = round((proc_stats(bare.pid)["cpu_s"] - b0["cpu_s"]) * 1000 / max(floor["requests"], 1), 3)
            result = {
                "database": "sqlite" if args.db == "sqlite" else "postgresql",
                "concurrency": args.concurrency, "rate": args.rate,
                "write_跟进": write, "read_我的": read, "bare_signature_only": floor,
                "ratio_write_rps_to_bare": round(write["rps"] / floor["rps"], 3),
                "ratio_read_rps_to_bare": round(read["rps"] / floor["rps"], 3),
                "reply_latency_ms": None,
                "reply_latency_note": "needs the outbox worker (branch outbox); measure after merge",
                "idle_rss_mb": round(idle["rss_mb"], 1), "peak_rss_mb": round(after["peak_rss_mb"], 1),
            }
            print(json.dumps(result, ensure_ascii=False, indent=2))
        finally:
            for proc in (server, bare):
                proc.terminate()
                proc.wait(10)
            if args.db != "sqlite":
                import asyncpg

                admin = await asyncpg.connect(base)
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
