"""The retro's weekly-trend picture: numbers in, PNG bytes out — a pure function, nothing else.

matplotlib (Agg backend) draws it: axes, ticks and CJK text come right without hand-written layout code.
It is imported only inside `render_trend_png`, which bot.charts runs in a worker process when the outbox
delivers the picture, so no bot process (serve, chat) ever holds matplotlib's ~40 MB; this module itself
imports only the standard library. A unit of work records only `chart_spec` (small JSON, in the outbox row);
`render_chart` draws that spec.

Layout for a phone: four small panels (one per measure, each with its own scale: follow-ups run in the
dozens, wins in ones), this week's bar in a strong colour and labelled with its value, the weeks before in
a quiet one, week labels as 月/日 of each Monday. 1080 px wide, as WeCom and DingTalk show an image at the
width of the chat.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CURRENT = "#d9480f"
PAST = "#a5b4c8"
WIDTH_IN, HEIGHT_IN, DPI = 7.2, 7.6, 150


@dataclass(frozen=True)
class TrendPanel:
    """One measure over the weeks, oldest first; `unit` follows this week's value (个, 次)."""

    title: str
    values: tuple[int, ...]
    unit: str


def render_trend_png(title: str, week_labels: Sequence[str], panels: Sequence[TrendPanel], font_path: str) -> bytes:
    """A PNG of `panels` (up to four) over `week_labels`, titled in the CJK font at `font_path`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager
    from matplotlib.figure import Figure

    font_manager.fontManager.addfont(font_path)
    family = font_manager.FontProperties(fname=font_path).get_name()
    with matplotlib.rc_context({"font.family": family, "axes.unicode_minus": False, "font.size": 11}):
        figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
        figure.suptitle(title, fontsize=17)
        axes = figure.subplots(2, 2)
        positions = list(range(len(week_labels)))
        step = max(1, (len(week_labels) + 3) // 4)  # about four week labels per panel: readable on a phone
        for ax, panel in zip(axes.flat, panels, strict=False):
            colours = [PAST] * (len(panel.values) - 1) + [CURRENT]
            ax.bar(positions, panel.values, color=colours, width=0.7)
            this_week = panel.values[-1]
            ax.set_title(f"{panel.title}　本周 {this_week} {panel.unit}", fontsize=13, loc="left")
            ax.annotate(str(this_week), (positions[-1], this_week), ha="center",
                        va="bottom" if this_week >= 0 else "top", fontsize=12, color=CURRENT,
                        xytext=(0, 2 if this_week >= 0 else -2), textcoords="offset points")
            shown = [p for p in positions if (len(positions) - 1 - p) % step == 0]
            ax.set_xticks(shown, [week_labels[p] for p in shown], fontsize=10)
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.tick_params(axis="y", labelsize=10)
            ax.axhline(0, color="#555555", linewidth=0.8)
            ax.spines[["top", "right"]].set_visible(False)
            ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
            ax.set_axisbelow(True)
            low, high = ax.get_ylim()
            ax.set_ylim(min(low, 0), max(high * 1.15, 1))
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        out = io.BytesIO()
        figure.savefig(out, format="png", dpi=DPI, facecolor="white")
    return out.getvalue()


def chart_spec(title: str, week_labels: Sequence[str], panels: Sequence[TrendPanel]) -> dict[str, Any]:
    """What to draw, as the JSON an outbox row carries until delivery: the numbers, never the picture."""
    return {"kind": "weekly_trend", "title": title, "labels": list(week_labels),
            "panels": [{"title": p.title, "values": list(p.values), "unit": p.unit} for p in panels]}


def render_chart(spec: dict[str, Any], font_path: str) -> bytes:
    """The PNG of a `chart_spec` (run in the drawing worker: a top-level function, picklable)."""
    panels = [TrendPanel(str(p["title"]), tuple(int(v) for v in p["values"]), str(p["unit"])) for p in spec["panels"]]
    return render_trend_png(str(spec["title"]), [str(label) for label in spec["labels"]], panels, font_path)
