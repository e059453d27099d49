"""Judges what a check's query returned: rows found, a threshold crossed, or an anomaly in a series."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from anomaly_monitor import anomaly
from anomaly_monitor.display import count, number, value_range
from anomaly_monitor.models import EXPORT_ROWS, SAMPLE_ROWS, Check, CheckType, QueryResult, Status
from anomaly_monitor.periods import Periods, complete_periods, iso_time, upper_bound


@dataclass
class Verdict:
    status: Status
    message: str
    value: float | None = None
    expected: tuple[float | None, float | None] | None = None
    series: list[tuple[dt.datetime, float]] | None = None
    band: tuple[tuple[dt.datetime, float, float], ...] = ()


@dataclass(frozen=True)
class Baseline:
    """What a run knows about a check beyond its query: what to leave out of the anomaly baseline."""

    incident_since: dt.datetime | None = None  # an open incident began with the run at this time
    windows: tuple[tuple[dt.datetime, dt.datetime, str], ...] = ()  # exclusion windows: [start, end), what
    expected_at: tuple[dt.datetime, ...] = ()  # the runs whose judged values people marked Expected

    def window_at(self, moment: dt.datetime) -> str | None:
        return next((what for start, end, what in self.windows if start <= moment < end), None)


NO_BASELINE = Baseline()


class ShapeError(ValueError):
    """The query returned something this check type cannot judge; the check ends `error`."""


def row_limit(check: Check) -> int | None:
    """How many rows to fetch: a sample (the document's `rows`; a threshold needs one, and notices more), more
    for a rows check to export, all for a series."""
    if check.type is CheckType.ANOMALY:
        return None
    return EXPORT_ROWS if check.export_sheet and check.type is CheckType.ROWS else SAMPLE_ROWS


def is_number(value: Any) -> bool:
    return isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool)


def metric(result: QueryResult) -> float:
    """The value of a one-row result: the column `value`, else its only numeric column."""
    if result.row_count == 0:
        raise ShapeError("no data: the query returned no row (a threshold check needs exactly one)")
    if result.row_count > 1:
        raise ShapeError(f"the query returned {result.row_count} rows; a threshold check needs exactly one")
    row = result.rows[0]
    if "value" in row:
        raw = row["value"]
    else:
        numeric = [c for c in result.columns if is_number(row[c])]
        if len(numeric) != 1:
            raise ShapeError(
                f"cannot tell which column is the metric among {', '.join(result.columns)}: name it `value`"
            )
        raw = row[numeric[0]]
    if raw is None:
        raise ShapeError("no data: the metric is NULL")
    if not is_number(raw):
        raise ShapeError(f"the metric is not a number: {raw!r}")
    try:
        value = float(raw)
    except OverflowError:  # an integer beyond any float
        value = math.inf
    if not math.isfinite(value):  # NaN would pass every bound unnoticed
        raise ShapeError(f"the metric is {raw}, not a finite number")
    return value


def parse_ts(raw: Any) -> dt.datetime:
    if isinstance(raw, dt.datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=dt.UTC)
    if isinstance(raw, dt.date):
        return dt.datetime(raw.year, raw.month, raw.day, tzinfo=dt.UTC)
    parsed = iso_time(str(raw))
    if parsed is None:
        raise ShapeError(f"column ts holds {raw!r}, which is not a date or timestamp")
    return parsed


def series(result: QueryResult) -> list[tuple[dt.datetime, float | None]]:
    """The (ts, value) rows of an anomaly series, sorted by time."""
    values = result.column("value")
    if not {type(v) for v in values} <= {float, int, type(None)}:  # one look at the column, not at each cell
        for value in values:
            if value is not None and not is_number(value):
                raise ShapeError(f"column value holds {value!r}, which is not a number")
    stamps = result.column("ts")
    times = [(type(t) is str and iso_time(t)) or parse_ts(t) for t in stamps]  # parse_ts raises, naming it
    points = [(t, None if v is None else float(v)) for t, v in zip(times, values, strict=True)]
    points.sort(key=operator.itemgetter(0))
    return points


def canonical(result: QueryResult) -> QueryResult:
    """The result with its columns `ts` and `value` so named however the query wrote them (`AS Value`): BigQuery's
    column names are case-insensitive, so `Value` is the column `value`."""
    columns = [column.lower() if column.lower() in ("ts", "value") else column for column in result.columns]
    if columns == result.columns:
        return result
    return QueryResult(columns, result.values, result.row_count, result.bytes_processed)


def judge_rows(result: QueryResult) -> Verdict:
    if result.row_count == 0:
        return Verdict(Status.OK, "no rows returned", value=0.0)
    return Verdict(Status.ALERT, f"{count(result.row_count, 'row')} returned", value=float(result.row_count))


def judge_threshold(check: Check, result: QueryResult) -> Verdict:
    value = metric(result)
    expected = (check.min, check.max)
    if check.min is not None and value < check.min:
        return Verdict(Status.ALERT, f"{number(value)} is below the minimum {number(check.min)}", value, expected)
    if check.max is not None and value > check.max:
        return Verdict(Status.ALERT, f"{number(value)} is above the maximum {number(check.max)}", value, expected)
    return Verdict(
        Status.OK, f"{number(value)} is within the expected range ({value_range(*expected)})", value, expected
    )


def judge_points(
    check: Check,
    points: Sequence[tuple[dt.datetime, float | None]],
    now: dt.datetime | None = None,
    baseline: Baseline = NO_BASELINE,
) -> Verdict:
    """An anomaly verdict on a series (`now` given: judged at its newest complete period) or on a single value
    and its earlier values (`now` None: the last point is judged)."""
    if not points:
        raise ShapeError("no data: the query returned no row")
    ordered = sorted(points, key=operator.itemgetter(0))[-anomaly.MAX_POINTS :]  # never looked at further back
    periods = complete_periods(ordered, now, upper_bound(check.sql)) if now else Periods(ordered)
    # what a chart shows: the recent points only (a run of thousands of checks must not hold every series)
    clean = [(t, v) for t, v in ordered[-2 * anomaly.CHART_POINTS :] if v is not None and math.isfinite(v)]
    clean = clean[-anomaly.CHART_POINTS :]
    if periods.missing and periods.last_row and periods.expected_last:
        noun = "period" if periods.missing == 1 else "periods"
        message = (
            f"no data since {_when(periods.last_row)}, {periods.missing} {noun} missing"
            f" (the newest complete period is {_when(periods.expected_last)})"
        )
        return Verdict(Status.ALERT, message, None, None, clean)
    if not periods.points:
        return Verdict(Status.OK, "the only period is still in progress: not judged", None, None, clean)
    when, value = periods.points[-1]
    place = _placed(check, periods) if now else None
    window = baseline.window_at(place(when) if place else when)
    if window:
        return Verdict(Status.OK, f"{_when(when)} is inside the {window}: not judged", value, None, clean)
    history = _baseline(periods, baseline, place)
    judgement = anomaly.judge(
        [*history, (when, value)],
        seasonality=str(check.seasonality),
        direction=str(check.direction),
        sensitivity=check.sensitivity,
        low=check.min,
        high=check.max,
        departed=baseline.incident_since is not None,
    )
    message = judgement.message
    if baseline.incident_since is not None:
        message += f"; judged against the range from before the incident began ({_when(baseline.incident_since)})"
    status = Status.ALERT if judgement.anomalous else Status.OK
    return Verdict(status, message, judgement.value, judgement.expected, clean, judgement.band)


def _placed(check: Check, periods: Periods) -> Callable[[dt.datetime], dt.datetime] | None:
    """Where a series' day falls for exclusion windows: a series of days (DATE values, or midnights UTC whole
    days apart) labels each point with a calendar day, the check's own day, so it is placed at that day's midnight in
    the check's time zone (a window on 2026-11-30 then holds the point 2026-11-30 in any zone). None: as it is."""
    day = dt.timedelta(days=1)
    midnight = dt.time(0)
    if (periods.step is not None and periods.step % day) or any(
        t.astimezone(dt.UTC).time() != midnight for t, _ in periods.points
    ):
        return None
    zone = ZoneInfo(check.timezone)
    return lambda t: dt.datetime(t.year, t.month, t.day, tzinfo=zone)


def _baseline(
    periods: Periods, baseline: Baseline, place: Callable[[dt.datetime], dt.datetime] | None = None
) -> list[tuple[dt.datetime, float | None]]:
    """The points the judged one is compared with: before an open incident, outside exclusion windows, and
    without the values people marked Expected."""
    history = periods.points[:-1]
    if baseline == NO_BASELINE:
        return history
    step = periods.step

    def judged_at(moment: dt.datetime) -> dt.datetime | None:
        """The point a run at `moment` judged: the newest complete period then (the newest value before it)."""
        done = [t for t, _ in periods.points if (t + step <= moment if step else t <= moment)]
        return done[-1] if done else None

    marked = {judged_at(at) for at in baseline.expected_at}
    history = [(t, v) for t, v in history if t not in marked and not baseline.window_at(place(t) if place else t)]
    if baseline.incident_since is not None:
        first = judged_at(baseline.incident_since)  # the first point the incident alerted on
        history = [(t, v) for t, v in history if first is None or t < first]
    return history


def _when(moment: dt.datetime) -> str:
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%d") if utc.time() == dt.time(0) else utc.strftime("%Y-%m-%d %H:%M UTC")


def judge(
    check: Check,
    result: QueryResult,
    now: dt.datetime,
    past_values: Sequence[tuple[dt.datetime, float]] = (),
    baseline: Baseline = NO_BASELINE,
) -> Verdict:
    """The verdict for one check's result; `past_values` are its earlier values, for single-value anomaly checks
    (those recorded after `now`, by runs at a later --now, are not its past and are left out).

    Raises ShapeError when the result does not fit the check type."""
    if check.type is CheckType.ROWS:
        return judge_rows(result)
    result = canonical(result)
    if check.type is CheckType.THRESHOLD:
        return judge_threshold(check, result)
    if {"ts", "value"} <= set(result.columns):
        return judge_points(check, series(result), now, baseline)
    past = [(t, v) for t, v in past_values if t <= now]
    return judge_points(check, [*past, (now, metric(result))], None, baseline)
