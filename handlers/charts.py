"""The retro's chart: which CJK font to draw with (found once at start), and drawing it off the event loop.

Chinese labels need a CJK font; without one matplotlib draws empty boxes, so no font means no chart — one
warning at start and text-only retros, never a picture of tofu. The lookup asks fontconfig (`fc-list
:lang=zh`), preferring the fonts we know render well (WenQuanYi Micro Hei, Noto/Source Han Sans), then
tries their usual paths; `SALESBOT_CHART_FONT_DIR` restricts it to one directory.

Drawing (handlers.chart_png, matplotlib) runs in one worker process, started on the first chart and
stopped after `IDLE_SECONDS` without one: the event loop never waits on it, and a bot process never holds
matplotlib's memory — `serve` stays at its size however many retros it sends. A chart that fails or times
out is logged and the retro goes out as text.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import threading
from datetime import datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.messages import Image
from handlers.chart_png import TrendPanel, render_trend_png
from schedules.calendar import at_local
from storage.charts import new_chart_id, save_chart_image
from storage.store import Store

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from storage.trends import WeekPoint

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
WEEKS = 12
TIMEOUT_SECONDS = 60.0
IDLE_SECONDS = 120.0
ALT = "周趋势"


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


def trend_panels(points: list[WeekPoint]) -> list[TrendPanel]:
    """The four measures of the retro's picture, in the retro's words."""
    return [
        TrendPanel("赢单", tuple(p.wins for p in points), "个"),
        TrendPanel("跟进", tuple(p.followups for p in points), "次"),
        TrendPanel("新客户", tuple(p.new_customers for p in points), "个"),
        TrendPanel("求助被接", tuple(p.help_taken for p in points), "次"),
    ]


async def retro_chart(store: Store, week_start: Any, tz: str, now: datetime) -> Image | None:
    """The retro's picture: the 12 weeks up to the one starting `week_start`, drawn and kept (storage.charts)
    in this unit of work; None without a font or when drawing failed (the retro is then text only)."""
    font = store.chart_font
    if font is None:
        return None
    from storage.trends import weekly_series

    points = await weekly_series(store, at_local(week_start, time(12), tz), WEEKS)
    labels = [f"{p.start.month}/{p.start.day}" for p in points]
    title = f"{store.team.name} 周趋势（近 {WEEKS} 周）"
    try:
        png: bytes = await worker.run(render_trend_png, title, labels, trend_panels(points), font)
    except Exception:
        log.exception("charts: drawing the retro's chart failed for team %s; sending text only", store.team.id)
        return None
    chart_id = new_chart_id()
    await save_chart_image(store, chart_id, png, now)
    return Image(png=png, image_id=chart_id, alt=ALT)
