"""What a person reads of a backtest: the incidents as a table, one summary line per sensitivity, and a chart."""

from __future__ import annotations

import datetime as dt
import io

from anomaly_monitor.backtest import Backtest, Replay, ReplayedIncident
from anomaly_monitor.judge import fmt
from anomaly_monitor.models import Status
from anomaly_monitor.report import text_table

PANEL_WIDTH_IN, PANEL_HEIGHT_IN, DPI = 12.0, 2.8, 100


def duration(span: dt.timedelta) -> str:
    """A duration in words a person reads at a glance: 45m, 3h 15m, 2d 4h."""
    minutes = round(span / dt.timedelta(minutes=1))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


def when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")


def incident_row(incident: ReplayedIncident, backtest: Backtest) -> dict[str, object]:
    end = incident.resolved_at or backtest.ticks[-1]
    lasted = duration(end - incident.opened_at)
    peak = incident.peak
    return {
        "opened": when(incident.opened_at),
        "resolved": when(incident.resolved_at) if incident.resolved_at else "still open",
        "how long": lasted if incident.resolved_at else f"{lasted}+",
        "failing runs": len(incident.failing),
        "notices": incident.notices,
        "peak value": fmt(peak.value) if peak else "",
        "reason": incident.message,
    }


def summary_line(run: Replay, backtest: Backtest) -> str:
    """'would have opened 4 incidents and sent 6 notices in 30 days', and how the ticks were judged."""
    days = (backtest.end - backtest.start) / dt.timedelta(days=1)
    span = f"{fmt(round(days, 1))} days" if days >= 1 else f"{fmt(round(days * 24, 1))} hours"
    counts = run.summary()
    opened = f"{counts['incidents']} incident{'' if counts['incidents'] == 1 else 's'}"
    sent = f"{counts['notices']} notice{'' if counts['notices'] == 1 else 's'}"
    ticks = f"{counts['ok']} ok, {counts['alert']} alert, {counts['error']} error of {len(backtest.ticks)} ticks"
    prefix = f"sensitivity {fmt(run.sensitivity)}: " if run.sensitivity is not None else ""
    return f"{prefix}would have opened {opened} and sent {sent} in {span} ({ticks})"


def render_backtest(backtest: Backtest) -> str:
    """The whole backtest as terminal text."""
    head = f"backtest of {backtest.name}"
    if backtest.message:
        return f"{head}: not replayed: {backtest.message}\n"
    ticks = f"{len(backtest.ticks):,} ticks of {backtest.every!r}, {backtest.queries:,} queries"
    parts = [f"{head} ({backtest.type}) from {when(backtest.start)} to {when(backtest.end)} UTC: {ticks}"]
    for run in backtest.runs:
        title = f"sensitivity {fmt(run.sensitivity)}" if run.sensitivity is not None else "incidents"
        rows = [incident_row(i, backtest) for i in run.incidents]
        parts.append(f"{title}\n{text_table(rows, width=70) if rows else '(none)'}")
    parts.append("\n".join(summary_line(run, backtest) for run in backtest.runs))
    return "\n\n".join(parts) + "\n"


def render_backtest_chart(backtest: Backtest) -> bytes:
    """A PNG with one panel per sensitivity: the values, the expected band, alerts in red, errors as grey marks
    and each incident shaded from its opening message to its resolved note."""
    # Imported here: only a backtest with --chart draws, and neither belongs on the function's cold path.
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    panels = len(backtest.runs)
    fig = Figure(figsize=(PANEL_WIDTH_IN, PANEL_HEIGHT_IN * panels), dpi=DPI)
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    for ax, run in zip(axes, backtest.runs):
        frame = pd.DataFrame(
            {
                "value": [p.value for p in run.points],
                "low": [p.expected[0] if p.expected else None for p in run.points],
                "high": [p.expected[1] if p.expected else None for p in run.points],
                "status": [str(p.status) for p in run.points],
            },
            index=pd.DatetimeIndex([p.at for p in run.points]),
            dtype=object,
        )
        values = pd.to_numeric(frame["value"]).astype(float)
        low, high = pd.to_numeric(frame["low"]).astype(float), pd.to_numeric(frame["high"]).astype(float)
        ax.plot(frame.index, values, color="#4a6fa5", linewidth=1, label="value")
        _draw_band(ax, frame.index, values, low, high)
        alerts = frame["status"] == str(Status.ALERT)
        ax.scatter(frame.index[alerts], values[alerts], color="#d62728", s=14, zorder=3, label="alert")
        errors = frame["status"] == str(Status.ERROR)
        if errors.any():
            bottom = ax.get_ylim()[0]
            ax.scatter(frame.index[errors], [bottom] * int(errors.sum()), marker="x", color="#7f7f7f", s=16,
                       zorder=3, label="query error")  # fmt: skip
        for incident in run.incidents:
            ax.axvspan(incident.opened_at, incident.resolved_at or backtest.ticks[-1], color="#d62728", alpha=0.08)
        ax.set_title(_panel_title(backtest, run), fontsize=10, loc="left")
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25)
        ax.legend(loc="upper left", fontsize=7, frameon=False, ncols=4)
    locator = AutoDateLocator(maxticks=10)
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))
    fig.subplots_adjust(left=0.06, right=0.99, top=1 - 0.35 / (PANEL_HEIGHT_IN * panels), bottom=0.5 / (PANEL_HEIGHT_IN * panels), hspace=0.35)  # fmt: skip
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _panel_title(backtest: Backtest, run: Replay) -> str:
    counts = run.summary()
    setting = f", sensitivity {fmt(run.sensitivity)}" if run.sensitivity is not None else ""
    return f"{backtest.name}{setting}: {counts['incidents']} incidents, {counts['notices']} notices, " \
        f"{counts['alert']} alerting ticks of {len(backtest.ticks)}"  # fmt: skip


def _draw_band(ax: object, index: object, values: object, low: object, high: object) -> None:
    """The expected range at each tick; an unbounded side runs to the edge of the plot."""
    if low.isna().all() and high.isna().all():  # type: ignore[attr-defined]
        return
    finite = [s[s.notna()] for s in (values, low, high)]  # type: ignore[index]
    bottom = min(s.min() for s in finite if len(s))
    top = max(s.max() for s in finite if len(s))
    margin = (top - bottom) * 0.05 or 1.0
    bottom, top = bottom - margin, top + margin
    ax.fill_between(index, low.fillna(bottom), high.fillna(top), step="mid", color="#9ecae1", alpha=0.45,  # type: ignore[attr-defined]
                    linewidth=0, label="expected")  # fmt: skip
    ax.set_ylim(bottom, top)  # type: ignore[attr-defined]
