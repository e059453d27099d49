"""Renders an anomaly alert's chart: the recent series, the expected band and the judged point, as a PNG."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence

from anomaly_monitor.anomaly import Judgement
from anomaly_monitor.models import CheckResult, Status

RECENT_POINTS = 60
WIDTH_PX, HEIGHT_PX, DPI = 600, 250, 100


def render_chart(points: Sequence[tuple[dt.datetime, float | None]], judgement: Judgement, title: str) -> bytes:
    """A ~600x250 PNG of the last points, the expected band around the newest one and that point (red if anomalous)."""
    # Imported here: only alerts draw charts, and every cold start would otherwise pay for matplotlib.
    import matplotlib

    matplotlib.use("Agg")  # no display in a Cloud Function
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    recent = sorted(points, key=lambda p: p[0])[-RECENT_POINTS:]
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    ax = fig.add_subplot()
    times = [t for t, _ in recent]
    ax.plot(times, [v if v is not None else float("nan") for _, v in recent], color="#4a6fa5", linewidth=1.2)
    if recent:
        _draw_band(ax, times, judgement)
        when, value = recent[-1]
        if value is not None:
            color = "#d62728" if judgement.anomalous else "#2ca02c"
            ax.scatter([when], [value], color=color, s=36, zorder=3)
    ax.set_title(title, fontsize=10, loc="left")
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25)
    locator = AutoDateLocator(maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    fig.subplots_adjust(left=0.1, right=0.98, top=0.88, bottom=0.2)  # fixed margins: tight_layout is slow
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _draw_band(ax: object, times: list[dt.datetime], judgement: Judgement) -> None:
    """Shades the expected range across the chart's width; an unbounded side runs to the plot's edge."""
    low, high = judgement.expected
    if low is None and high is None:
        return
    bottom, top = ax.get_ylim()  # type: ignore[attr-defined]
    values = [v for v in (low, high, bottom, top) if v is not None]
    bottom, top = min(values), max(values)
    ax.axhspan(low if low is not None else bottom, high if high is not None else top,  # type: ignore[attr-defined]
               color="#9ecae1", alpha=0.35, label="expected")  # fmt: skip
    ax.set_ylim(bottom, top)  # type: ignore[attr-defined]


def chart_for(result: CheckResult) -> bytes | None:
    """The chart of an alert's series and expected band; None for results without a series (rows checks)."""
    if not result.series or result.status is not Status.ALERT:
        return None
    judgement = Judgement(True, result.expected or (None, None), result.value, result.message, len(result.series))
    return render_chart(result.series, judgement, result.name)
