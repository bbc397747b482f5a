"""`salesbot serve`: the HTTP service in one process, or `--workers N` copies sharing a port.

A single process stops cleanly on SIGTERM/SIGINT: it stops accepting connections, lets the requests
and commands in flight finish — each command's transaction carries its outbox rows, so finishing the
command is finishing its writes — within `STOP_TIMEOUT_S`, closes its connections, logs one line and
exits 0. What is still unfinished after that stays recorded (DingTalk's inbound rows, the outbox) and
is picked up by recovery on the next start.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from typing import Any

from bot.settings import Settings

log = logging.getLogger("salesbot")

WORKER_ENV = "SALESBOT_SERVE_WORKER"
# How long a stop may take: requests in flight, queued commands, the outbox batch being sent.
STOP_TIMEOUT_S = 10.0
# The cyclic collector's thresholds while serving. A command allocates hundreds of container objects
# (ORM rows, requests, futures) that nearly all die by reference count within milliseconds; at Python's
# 700 the collector ran ~750 young and ~70 middle passes in one peer-bench run, ~5 % of the process's
# CPU. At 10,000 the young objects are mostly gone before a pass looks at them: ~20 passes, under 1 %.
GC_THRESHOLDS = (10_000, 10, 10)


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    workers = getattr(args, "workers", None) or 1
    if workers < 1:
        print("--workers 至少为 1。", file=sys.stderr)
        return 2
    if workers > 1:
        from storage.engine import is_sqlite

        if is_sqlite(settings.database_url):
            print(
                f"--workers {workers} 需要 PostgreSQL：SQLite 同一时刻只允许一个写入者，多个进程只会互相等待。"
                "请去掉 --workers，或使用 postgresql://… 数据库。",
                file=sys.stderr,
            )
            return 2
        return await _serve_workers(workers)
    return await _serve_one(settings)


async def _serve_one(settings: Settings) -> int:
    from aiohttp import web

    from bot.app import ROUTER_KEY, build_app, make_runner

    # A worker of `serve --workers N` shares the port with its siblings (SO_REUSEPORT): the kernel
    # spreads connections over the processes. Everything they share is in PostgreSQL and replica-safe
    # (inbound dedup and recovery leases, outbox SKIP LOCKED, schedule firing keys).
    reuse_port = os.environ.get(WORKER_ENV) is not None
    stop = _StopSignal()
    stop.install()
    app = build_app(settings)
    runner = make_runner(app, settings, access_log=None, shutdown_timeout=STOP_TIMEOUT_S)
    await runner.setup()
    router = app[ROUTER_KEY]
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or None)
    await site.start()
    # Everything built so far (modules, mappers, compiled statements) lives as long as the process:
    # collect start-up's garbage first, then keep the rest out of the cyclic collector's full passes,
    # whose pauses would show in reply latency.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    log.info("salesbot serving on http://%s:%s%s", settings.host, settings.port,
             f" (worker {os.environ[WORKER_ENV]})" if reuse_port else "")
    try:
        await stop.wait()
    finally:
        finished_before = router.finished
        try:
            await asyncio.wait_for(runner.cleanup(), STOP_TIMEOUT_S)
            left = ""
        except TimeoutError:
            left = f", {router.running} unfinished after {STOP_TIMEOUT_S:g} s (left for recovery)"
    log.info("salesbot stopped: %s, %d in-flight finished%s", stop.name, router.finished - finished_before, left)
    return 0


class _StopSignal:
    """SIGTERM/SIGINT as an awaitable: the first one starts the clean stop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.name = ""

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, sig: signal.Signals) -> None:
        if not self.name:
            self.name = sig.name
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()


async def _serve_workers(workers: int) -> int:
    """Start `workers` copies of this `serve` (same arguments) on one port and watch them.

    SIGTERM/SIGINT are passed on (each worker then stops as a single `serve` does); if one worker
    dies the others are stopped too, so a supervisor (systemd, Docker) sees the failure and restarts
    the whole set.
    """
    argv = [sys.executable, "-m", "bot.cli", *_argv_without_workers(sys.argv[1:])]
    children = [
        await asyncio.create_subprocess_exec(*argv, env={**os.environ, WORKER_ENV: str(n)})
        for n in range(workers)
    ]
    log.info("salesbot: %d worker processes started (pids %s)", workers, ", ".join(str(c.pid) for c in children))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waits = [asyncio.ensure_future(c.wait()) for c in children]
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([*waits, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for child in children:
            if child.returncode is None:
                child.terminate()
        await asyncio.gather(*waits, return_exceptions=True)
        stopper.cancel()
    codes = [c.returncode for c in children]
    return 0 if stop.is_set() else next((c for c in codes if c), 1)


def _argv_without_workers(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return out


def add_parser(sub: Any) -> None:
    serve = sub.add_parser("serve", help="启动 HTTP 服务（企业微信/钉钉回调、定时推送、发送队列）")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1,
                       help="进程数（共享端口，SO_REUSEPORT；仅 PostgreSQL）。默认 1")
    serve.add_argument("--config", dest="sub_config")
    serve.add_argument("--db", dest="sub_db")
