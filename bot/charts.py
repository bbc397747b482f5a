"""The retro's chart at delivery: which CJK font to draw with (found once at start), the drawing worker
process, and the PNG kept for platforms that link to it.

A command or firing only records what to draw (handlers.charts: the numbers as JSON and an unguessable id,
in the outbox row). The picture is drawn here when the outbox delivers that row, or when the console shows
it: `delivered_image` reuses the PNG already stored under the id (a retry never draws twice), else draws it
and stores it (storage.charts, its own short transaction) before any platform links to it.

Chinese labels need a CJK font; without one matplotlib draws empty boxes, so no font means no chart — one
warning at start and text-only retros, never a picture of tofu. The lookup asks fontconfig (`fc-list
:lang=zh`), preferring the fonts we know render well (WenQuanYi Micro Hei, Noto/Source Han Sans), then
tries their usual paths; `SALESBOT_CHART_FONT_DIR` restricts it to one directory.

Drawing (handlers.chart_png, matplotlib) runs in one worker process, started on the first chart and
stopped after `IDLE_SECONDS` without one: the event loop never waits on it, and a bot process never holds
matplotlib's memory — `serve` stays at its size however many retros it sends. A drawing that fails or times
out raises `ChartFailed`: the outbox fails that picture row only.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.delivery import OutgoingMessage, PermanentFailure
from bot.messages import Image
from handlers.chart_png import render_chart
from storage.charts import chart_image, save_chart_image

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from storage.database import Database

log = logging.getLogger("salesbot.charts")

# File names of CJK fonts that draw Chinese well, best first (Debian/Ubuntu fonts-wqy-microhei,
# fonts-noto-cjk, Adobe's Source Han Sans as shipped elsewhere).
PREFERRED = (
    "wqy-microhei.ttc",
    "NotoSansCJK-Regular.ttc",
    "NotoSansCJKsc-Regular.otf",
    "NotoSansSC-Regular.otf",
    "SourceHanSansSC-Regular.otf",
    "wqy-zenhei.ttc",
)
KNOWN_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/System/Library/Fonts", "C:/Windows/Fonts")
TIMEOUT_SECONDS = 60.0
IDLE_SECONDS = 120.0


def find_cjk_font(font_dir: str | None = None) -> str | None:
    """The path of a CJK font to draw charts with, or None (logged once, as a warning, by the caller's start).

    With `font_dir`, only that directory (and below) is searched — how an operator pins a font, and how a
    test sees a machine without one.
    """
    if font_dir is not None:
        return _preferred(p for p in Path(font_dir).rglob("*") if p.is_file())
    return _from_fontconfig() or _preferred(
        p for d in KNOWN_DIRS if Path(d).is_dir() for p in Path(d).rglob("*") if p.name in PREFERRED
    )


def _preferred(paths: Any) -> str | None:
    found = {p.name: p for p in paths}
    for name in PREFERRED:
        if name in found:
            return str(found[name])
    return None


def _from_fontconfig() -> str | None:
    """Fonts fontconfig says cover Chinese; a preferred one if present, else the first of them."""
    if shutil.which("fc-list") is None:
        return None
    try:
        listed = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10,
                                check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    paths = [Path(line.split(":")[0].strip()) for line in listed.splitlines() if line.strip()]
    paths = [p for p in paths if p.suffix.lower() in (".ttc", ".ttf", ".otf") and p.is_file()]
    return _preferred(paths) or (str(paths[0]) if paths else None)


def announce_font(font: str | None) -> None:
    """The one start-up line about charts: which font, or why reports will be text only."""
    if font is None:
        log.warning("找不到中文字体（如 fonts-wqy-microhei 或 Noto CJK），复盘只发文字、不带趋势图。"
                    "安装：apt-get install fonts-wqy-microhei")
    else:
        log.info("charts: CJK font %s", font)


class _Worker:
    """One lazily started worker process for drawing, stopped when idle (its memory is not ours to keep)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._busy = 0
        self._timer: threading.Timer | None = None

    async def run(self, fn: Any, *args: Any) -> Any:
        # Imported on the first chart: a console chat or a process that never draws does not pay for them.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._pool is None:
                # spawn: a fork of a process with threads (aiosqlite, the executor) may inherit held locks.
                self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            pool = self._pool
            self._busy += 1
        try:
            return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(pool, fn, *args),
                                          TIMEOUT_SECONDS)
        except BaseException:
            self.stop(kill=True)  # a broken or stuck worker is replaced on the next chart
            raise
        finally:
            with self._lock:
                self._busy -= 1
                if self._busy == 0 and self._pool is not None:
                    self._timer = threading.Timer(IDLE_SECONDS, self.stop)
                    self._timer.daemon = True
                    self._timer.start()

    def stop(self, *, kill: bool = False) -> None:
        """Let the worker go (idle); with `kill`, end it now — it may be stuck in a drawing that timed out."""
        with self._lock:
            pool, self._pool = self._pool, None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if pool is None:
            return
        # Python 3.11 has no public way to end a pool's processes (3.14 adds terminate_workers()).
        processes = list((getattr(pool, "_processes", None) or {}).values()) if kill else []
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()


worker = _Worker()


class ChartFailed(Exception):
    """The picture could not be drawn (no font here, a broken font, a stuck or crashed worker)."""


async def draw(image: Image, font: str | None) -> Image:
    """`image` with its PNG drawn from its chart spec, off the event loop."""
    if image.png is not None:
        return image
    if image.chart is None:
        raise ChartFailed("no chart to draw")
    if font is None:
        raise ChartFailed("no CJK font on this host")
    try:
        png: bytes = await worker.run(render_chart, image.chart, font)
    except Exception as err:
        raise ChartFailed(f"drawing failed: {type(err).__name__}: {err}"[:300]) from err
    return image.drawn(png)


async def delivered_image(db: Database, image: Image, team_id: int | None, now: datetime) -> Image:
    """The picture ready to send: the stored PNG under its id if a delivery drew it before, else drawn now
    and stored (committed before it returns, so a link to `/charts/<id>.png` resolves when it is sent)."""
    if image.png is not None:
        return image
    async with db.transaction() as store:
        stored = await chart_image(store, image.image_id)
    if stored is not None:
        return image.drawn(stored)
    drawn = await draw(image, db.chart_font)
    if team_id is not None and drawn.png is not None:
        async with db.transaction() as store:
            await save_chart_image(store, image.image_id, team_id, drawn.png, now)
    return drawn


async def ready_to_send(db: Database, message: OutgoingMessage, team_id: int | None, now: datetime) -> OutgoingMessage:
    """What the outbox hands a platform: a picture row with its PNG, drawn now (or found stored by an earlier
    attempt) — never in the unit of work that queued it. A drawing that fails fails this picture row only
    (`PermanentFailure`, logged once by the outbox): its text went before it."""
    if message.image is None or message.image.png is not None:
        return message
    try:
        image = await delivered_image(db, message.image, team_id, now)
    except ChartFailed as err:
        raise PermanentFailure(f"picture {message.image.image_id} not drawn: {err}") from err
    return replace(message, image=image)
