"""Renders an anomaly alert's chart: the recent series, the model's expected band, the judged point, as a PNG."""

from __future__ import annotations

import datetime as dt
import io
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path

from anomaly_monitor.anomaly import Judgement
from anomaly_monitor.models import CheckResult, Status

log = logging.getLogger(__name__)

RECENT_POINTS = 96  # four days of an hourly series, three months of a daily one
WIDTH_PX, HEIGHT_PX, DPI = 600, 250, 100
SERIES, BAND, ALERT, OK, INCIDENT, BOUND = "#4a6fa5", "#9ecae1", "#d62728", "#2ca02c", "#ff7f0e", "#7f7f7f"


def render_chart(
    points: Sequence[tuple[dt.datetime, float | None]],
    judgement: Judgement,
    title: str,
    *,
    incident_since: dt.datetime | None = None,
    hard: tuple[float | None, float | None] = (None, None),
) -> bytes:
    """A ~600x250 PNG: the last points, the model's band over them, the judged point with its expected range (red
    when anomalous), the hard bounds, and where the open incident began."""
    # Imported here: only alerts draw charts, and every cold start would otherwise pay for matplotlib.
    # The x values are datetimes, which matplotlib's date units take but its stubs do not list ("stubs: no datetime").
    import matplotlib

    matplotlib.use("Agg")  # no display in a Cloud Function
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    recent = sorted(points, key=lambda p: p[0])[-RECENT_POINTS:]
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    ax = fig.add_subplot()
    times = [_naive_utc(t) for t, _ in recent]
    values = [v if v is not None else math.nan for _, v in recent]
    ax.plot(times, values, color=SERIES, linewidth=1.1, label="value")  # type: ignore[arg-type]  # stubs: no datetime
    start = times[0] if times else None
    band = [(_naive_utc(t), lo, hi) for t, lo, hi in judgement.band if start is None or _naive_utc(t) >= start]
    if band:
        lows = [lo if math.isfinite(lo) else math.nan for _, lo, _ in band]
        highs = [hi if math.isfinite(hi) else math.nan for _, _, hi in band]
        band_times = [t for t, _, _ in band]
        ax.fill_between(band_times, lows, highs, color=BAND, alpha=0.45, linewidth=0, label="expected")  # type: ignore[arg-type]  # stubs: no datetime
    if recent and recent[-1][1] is not None:
        when, value = times[-1], recent[-1][1]
        low, high = judgement.expected
        color = ALERT if judgement.anomalous else OK
        if low is not None or high is not None:
            bottom = low if low is not None else value
            top = high if high is not None else value
            ax.vlines([when], [bottom], [top], color=color, linewidth=3, alpha=0.35)  # type: ignore[arg-type]  # stubs: no datetime
        ax.scatter([when], [value], color=color, s=36, zorder=3, label="judged")  # type: ignore[arg-type]  # stubs: no datetime
    for bound, name in zip(hard, ("hard min", "hard max"), strict=True):
        if bound is not None:
            ax.axhline(bound, color=BOUND, linestyle="--", linewidth=0.9, label=name)
    if incident_since is not None and start is not None and _naive_utc(incident_since) >= start:
        ax.axvline(_naive_utc(incident_since), color=INCIDENT, linewidth=1.2, label="incident began")  # type: ignore[arg-type]  # stubs: no datetime
    ax.set_title(title, fontsize=10, loc="left")
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25)
    locator = AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, show_offset=True))
    if recent:
        ax.legend(loc="upper left", fontsize=7, ncols=3, frameon=False)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.88, bottom=0.2)  # fixed margins: tight_layout is slow
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    """UTC without tzinfo: matplotlib then labels the axis in UTC, as the messages are."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


def chart_for(result: CheckResult) -> bytes | None:
    """The chart of an alert's series and expected band; None for results without a series (rows checks)."""
    if not result.series or result.status is not Status.ALERT:
        return None
    judgement = Judgement(True, result.expected or (None, None), result.value, result.message, 0, None, result.band)
    check = result.check
    return render_chart(
        result.series,
        judgement,
        result.name,
        incident_since=result.incident.since if result.incident else None,
        hard=(check.min, check.max) if check else (None, None),
    )


def save_charts(results: Sequence[CheckResult], folder: Path) -> list[Path]:
    """Writes the chart of each alert in `results` to `folder`; a chart that fails costs a warning, not the run."""
    saved = []
    for result in results:
        try:
            png = chart_for(result)
            if png is None:
                continue
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', result.name)}.png"
            path.write_bytes(png)
        except Exception as exc:
            log.warning("check %s: chart not saved (%s: %s)", result.name, type(exc).__name__, exc)
            continue
        saved.append(path)
    return saved
