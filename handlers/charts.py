"""The retro's chart: what to draw — this week against the weeks before — never the drawing itself.

The unit of work that builds a retro records only the chart's numbers, labels and title (small JSON) and a
pre-allocated unguessable image id, in the neutral `Image` that travels in the outbox row with the text.
Drawing happens when the outbox delivers that row (bot.charts), so no transaction waits on matplotlib.
Without a CJK font (found at start, bot.charts) there is no chart: the retro is text only.
"""

from __future__ import annotations

from datetime import time
from typing import TYPE_CHECKING, Any

from bot.messages import Image
from handlers.chart_png import TrendPanel, chart_spec
from schedules.calendar import at_local
from storage.charts import new_chart_id
from storage.store import Store

if TYPE_CHECKING:
    from storage.trends import WeekPoint

WEEKS = 12
ALT = "周趋势"


def trend_panels(points: list[WeekPoint]) -> list[TrendPanel]:
    """The four measures of the retro's picture, in the retro's words."""
    return [
        TrendPanel("赢单", tuple(p.wins for p in points), "个"),
        TrendPanel("跟进", tuple(p.followups for p in points), "次"),
        TrendPanel("新客户", tuple(p.new_customers for p in points), "个"),
        TrendPanel("求助被接", tuple(p.help_taken for p in points), "次"),
    ]


async def retro_chart(store: Store, week_start: Any, tz: str) -> Image | None:
    """The retro's picture to be drawn at delivery: the 12 weeks up to the one starting `week_start`, as
    numbers under a fresh id; None without a font (the retro is then text only)."""
    if store.chart_font is None:
        return None
    from storage.trends import weekly_series

    points = await weekly_series(store, at_local(week_start, time(12), tz), WEEKS)
    labels = [f"{p.start.month}/{p.start.day}" for p in points]
    title = f"{store.team.name} 周趋势（近 {WEEKS} 周）"
    return Image(image_id=new_chart_id(), alt=ALT, chart=chart_spec(title, labels, trend_panels(points)))
