"""Process benchmark: idle memory of `salesbot serve`, and how soon `salesbot chat` answers a pipe.

    python -m bench.process                                   # SQLite, 5 runs of each
    python -m bench.process --runs 9
    python -m bench.process --pg                              # serve on PostgreSQL (SALESBOT_TEST_PG_URL or 127.0.0.1)
    python -m bench.process --pg postgresql://postgres@127.0.0.1:5432/test

(a) `salesbot serve` with WeCom (AI bot + self-built app callbacks) and DingTalk (robot + event callbacks)
both configured with made-up credentials, every platform API base pointed at a closed loopback port, so
nothing leaves the machine. RSS (and USS/PSS from /proc/PID/smaps_rollup) is read a few seconds after
/healthz first answers, when start-up has settled: the scheduler has had its first tick, the outbox worker
its first poll. Target: ≤ 75 MB.

(b) `printf '帮助\\n' | salesbot chat --db sqlite:///…`: wall time from launching the process to the first
reply line on its stdout, with a fresh database (created and migrated by that run) and with an existing
one (already at head). Target: ≤ 0.6 s.

Prints JSON: min/median/max over `--runs` runs. Not a test: the numbers depend on the machine and on
what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
NOWHERE = "http://127.0.0.1:9"  # the discard port, closed on a normal machine: any API call fails at once

AES_A = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
AES_B = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
PLATFORMS = {
    "SALESBOT_WECOM_CORP_ID": "wwbench",
    "SALESBOT_WECOM_AIBOT_TOKEN": "T",
    "SALESBOT_WECOM_AIBOT_AES_KEY": AES_A,
    "SALESBOT_WECOM_APP_TOKEN": "T2",
    "SALESBOT_WECOM_APP_AES_KEY": AES_B,
    "SALESBOT_WECOM_APP_SECRET": "sec",
    "SALESBOT_WECOM_AGENT_ID": "1000002",
    "SALESBOT_WECOM_API_BASE": NOWHERE,
    "SALESBOT_DINGTALK_APP_KEY": "dingbench",
    "SALESBOT_DINGTALK_APP_SECRET": "dingsecret",
    "SALESBOT_DINGTALK_AGENT_ID": "123",
    "SALESBOT_DINGTALK_EVENT_TOKEN": "evtoken",
    "SALESBOT_DINGTALK_EVENT_AES_KEY": AES_B,
    "SALESBOT_DINGTALK_OAPI_BASE": NOWHERE,
    "SALESBOT_DINGTALK_API_BASE": NOWHERE,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory_mb(pid: int) -> dict[str, float]:
    """RSS from /proc/PID/status; USS (private pages) and PSS from smaps_rollup where the kernel has it."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss"] = int(line.split()[1]) / 1024
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            fields = {line.split(":")[0]: int(line.split()[1]) for line in f if line.rstrip().endswith("kB")}
        out["pss"] = fields["Pss"] / 1024
        out["uss"] = (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024
    except (OSError, KeyError):
        pass
    return out


def summary(values: list[float], digits: int = 1) -> dict[str, float]:
    return {"min": round(min(values), digits), "median": round(statistics.median(values), digits),
            "max": round(max(values), digits)}


def run_env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESBOT_")}
    env.update(SALESBOT_DATABASE_URL=db_url, SALESBOT_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT), **extra)
    return env


def wait_healthz(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"salesbot serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("salesbot serve did not answer /healthz")


def serve_idle(db_url: str, settle: float) -> dict[str, float]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port)], cwd=ROOT,
                            env=run_env(db_url, **PLATFORMS), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_healthz(port, proc)
        time.sleep(settle)
        return memory_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(15)


def chat_first_reply(db_url: str) -> float:
    """Seconds from launching `salesbot chat` to the first `bot>` line on its stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "chat", "--db", db_url], cwd=ROOT, env=run_env(db_url),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("帮助\n".encode())
    proc.stdin.close()
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.stdout.read()
    proc.wait(15)
    if not line.startswith(b"bot>"):
        raise RuntimeError(f"unexpected first line from salesbot chat: {line!r}")
    return elapsed


def pg_database(base: str) -> tuple[str, str, str]:
    """A fresh PostgreSQL database for this run, migrated: (url, admin url, name)."""
    import asyncpg

    base = base.replace("postgresql+asyncpg://", "postgresql://")
    name = f"salesbot_bench_proc_{os.getpid()}"

    async def create() -> None:
        admin = await asyncpg.connect(base)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()

    asyncio.run(create())
    url = urlunsplit(urlsplit(base)._replace(path="/" + name))
    subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade", "--db", url], cwd=ROOT, env=run_env(url),
                   check=True, stdout=subprocess.DEVNULL)
    return url, base, name


def drop_pg(base: str, name: str) -> None:
    import asyncpg

    async def drop() -> None:
        admin = await asyncpg.connect(base)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    asyncio.run(drop())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after /healthz before reading memory")
    parser.add_argument("--pg", nargs="?", const=os.environ.get("SALESBOT_TEST_PG_URL")
                        or "postgresql://postgres@127.0.0.1:5432/test", default=None,
                        help="measure serve on PostgreSQL (a scratch database is created and dropped)")
    parser.add_argument("--skip-chat", action="store_true")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="salesbot-bench-proc-")
    result: dict[str, Any] = {"python": sys.version.split()[0], "runs": args.runs}
    pg: tuple[str, str, str] | None = pg_database(args.pg) if args.pg else None
    try:
        serve_url = pg[0] if pg else f"sqlite:///{tmp}/serve.db"
        samples = [serve_idle(serve_url, args.settle) for _ in range(args.runs)]
        result["serve_idle_mb"] = {"database": "postgresql" if pg else "sqlite", "target_rss": 75,
                                   **{k: summary([s[k] for s in samples]) for k in samples[0]}}
    finally:
        if pg:
            drop_pg(pg[1], pg[2])
    if not args.skip_chat:
        fresh = [chat_first_reply(f"sqlite:///{tmp}/fresh{i}.db") for i in range(args.runs)]
        existing_url = f"sqlite:///{tmp}/existing.db"
        chat_first_reply(existing_url)  # creates and migrates it
        existing = [chat_first_reply(existing_url) for _ in range(args.runs)]
        result["chat_first_reply_s"] = {"target": 0.6, "fresh_db": summary(fresh, 3),
                                        "existing_db": summary(existing, 3)}
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
