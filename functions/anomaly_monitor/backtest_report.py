"""What a person reads of a backtest: the incidents as a table, one summary line per sensitivity, and a chart."""

from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING

from anomaly_monitor.backtest import Backtest, Replay, ReplayedIncident
from anomaly_monitor.display import duration, number, text_table
from anomaly_monitor.models import Status

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

PANEL_WIDTH_IN, PANEL_HEIGHT_IN, DPI = 12.0, 2.8, 100
PLOT_LIMIT = 1e150  # values beyond are drawn at it: matplotlib's transforms overflow near the float limit


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")


def incident_row(incident: ReplayedIncident, backtest: Backtest) -> dict[str, object]:
    end = incident.resolved_at or backtest.ticks[-1]
    lasted = duration(incident.opened_at, end, compact=True)
    peak = incident.peak
    return {
        "opened": when(incident.opened_at),
        "resolved": when(incident.resolved_at) if incident.resolved_at else "still open",
        "how long": lasted if incident.resolved_at else f"{lasted}+",
        "failing runs": len(incident.failing),
        "notices": incident.notices,
        "peak value": peak.value if peak else None,
        "reason": incident.message,
    }


def summary_line(run: Replay, backtest: Backtest) -> str:
    """'would have opened 4 incidents and sent 6 notices in 30 days', and how the ticks were judged."""
    days = (backtest.end - backtest.start) / dt.timedelta(days=1)
    amount, unit = (round(days, 1), "day") if days >= 1 else (round(days * 24, 1), "hour")
    span = f"{number(amount)} {unit}{'' if amount == 1 else 's'}"
    counts = run.summary()
    opened, sent = plural(counts["incidents"], "incident"), plural(counts["notices"], "notice")
    ticks = f"{counts['ok']} ok, {counts['alert']} alert, {counts['error']} error of {len(backtest.ticks)} ticks"
    prefix = f"sensitivity {number(run.sensitivity)}: " if run.sensitivity is not None else ""
    return f"{prefix}would have opened {opened} and sent {sent} in {span} ({ticks})"


def render_backtest(backtest: Backtest) -> str:
    """The whole backtest as terminal text."""
    head = f"backtest of {backtest.name}"
    if backtest.message:
        return f"{head}: not replayed: {backtest.message}\n"
    ticks = f"{len(backtest.ticks):,} ticks of {backtest.every!r}, {backtest.queries:,} queries"
    parts = [f"{head} ({backtest.type}) from {when(backtest.start)} to {when(backtest.end)} UTC: {ticks}"]
    for run in backtest.runs:
        title = f"sensitivity {number(run.sensitivity)}" if run.sensitivity is not None else "incidents"
        rows = [incident_row(i, backtest) for i in run.incidents]
        parts.append(f"{title}\n{text_table(rows, width=70) if rows else '(none)'}")
    parts.append("\n".join(summary_line(run, backtest) for run in backtest.runs))
    return "\n\n".join(parts) + "\n"


def render_backtest_chart(backtest: Backtest) -> bytes:
    """A PNG with one panel per sensitivity: the values, the expected band, alerts in red, query errors as grey
    marks, and each incident shaded from its opening message to its resolved note."""
    # Imported here: only a backtest with --chart draws, and neither belongs on the function's cold path.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    panels = len(backtest.runs)
    height = PANEL_HEIGHT_IN * panels
    fig = Figure(figsize=(PANEL_WIDTH_IN, height), dpi=DPI)
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    for ax, run in zip(axes, backtest.runs):
        _draw_run(ax, run, backtest)
    locator = AutoDateLocator(maxticks=10)
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))
    fig.subplots_adjust(left=0.06, right=0.99, top=1 - 0.4 / height, bottom=0.5 / height, hspace=0.4)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def points_frame(run: Replay) -> pd.DataFrame:
    """The run's ticks as a time-indexed frame: value, low, high (NaN where absent) and status."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "value": [p.value for p in run.points],
            "low": [p.expected[0] if p.expected else None for p in run.points],
            "high": [p.expected[1] if p.expected else None for p in run.points],
            "status": [str(p.status) for p in run.points],
        },
        index=pd.DatetimeIndex([p.at for p in run.points], name="at"),
    )
    numbers = ["value", "low", "high"]
    frame[numbers] = frame[numbers].astype(float).clip(-PLOT_LIMIT, PLOT_LIMIT)
    return frame


def _draw_run(ax: Axes, run: Replay, backtest: Backtest) -> None:
    frame = points_frame(run)
    ax.plot(frame.index, frame["value"], color="#4a6fa5", linewidth=1, label="value")
    _draw_band(ax, frame)
    alerts = frame[frame["status"] == str(Status.ALERT)]
    ax.scatter(alerts.index, alerts["value"], color="#d62728", s=14, zorder=3, label="alert")
    errors = frame[frame["status"] == str(Status.ERROR)]
    if len(errors):
        bottom = ax.get_ylim()[0]
        ax.scatter(errors.index, [bottom] * len(errors), marker="x", color="#7f7f7f", s=16, zorder=3,
                   label="query error")  # fmt: skip
    for incident in run.incidents:
        end = incident.resolved_at or backtest.ticks[-1]
        ax.axvspan(incident.opened_at, end, color="#d62728", alpha=0.1)  # type: ignore[arg-type]  # stubs: no datetime
    counts = run.summary()
    setting = f", sensitivity {number(run.sensitivity)}" if run.sensitivity is not None else ""
    title = (
        f"{backtest.name}{setting}: {plural(counts['incidents'], 'incident')}, {plural(counts['notices'], 'notice')}"
    )
    ax.set_title(f"{title}, {counts['alert']} alerting ticks of {len(backtest.ticks)}", fontsize=10, loc="left")
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25)
    ax.legend(loc="lower right", bbox_to_anchor=(1, 1), fontsize=7, frameon=False, ncols=4, borderaxespad=0.2)


def _draw_band(ax: Axes, frame: pd.DataFrame) -> None:
    """The expected range at each tick; an unbounded side runs to the edge of the plot."""
    band = frame[["low", "high"]]
    if band.isna().all().all():
        return
    known = frame[["value", "low", "high"]]
    bottom, top = float(known.min().min()), float(known.max().max())
    margin = (top - bottom) * 0.05 or 1.0
    bottom, top = bottom - margin, top + margin
    ax.fill_between(frame.index, band["low"].fillna(bottom), band["high"].fillna(top), step="mid", color="#9ecae1",
                    alpha=0.45, linewidth=0, label="expected")  # fmt: skip
    ax.set_ylim(bottom, top)
