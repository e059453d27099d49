"""Judges what a check's query returned: rows found, a threshold crossed, or an anomaly in a series."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from anomaly_monitor import anomaly
from anomaly_monitor.display import count, number, value_range
from anomaly_monitor.models import EXPORT_ROWS, SAMPLE_ROWS, Check, CheckType, QueryResult, Status


@dataclass
class Verdict:
    status: Status
    message: str
    value: float | None = None
    expected: tuple[float | None, float | None] | None = None
    series: list[tuple[dt.datetime, float]] | None = None


class ShapeError(ValueError):
    """The query returned something this check type cannot judge; the check ends `error`."""


def row_limit(check: Check) -> int | None:
    """How many rows to fetch: a sample for rows checks (more to export), two to notice a multi-row threshold,
    all for a series."""
    if check.type is CheckType.ROWS:
        return EXPORT_ROWS if check.export_sheet else SAMPLE_ROWS
    return {CheckType.THRESHOLD: 2, CheckType.ANOMALY: None}[check.type]


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
    return float(raw)


def parse_ts(raw: Any) -> dt.datetime:
    if isinstance(raw, dt.datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=dt.UTC)
    if isinstance(raw, dt.date):
        return dt.datetime(raw.year, raw.month, raw.day, tzinfo=dt.UTC)
    text = str(raw).strip().replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ShapeError(f"column ts holds {raw!r}, which is not a date or timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def series(result: QueryResult) -> list[tuple[dt.datetime, float | None]]:
    """The (ts, value) rows of an anomaly series, sorted by time."""
    points = []
    for row in result.rows:
        value = row["value"]
        if value is not None and not is_number(value):
            raise ShapeError(f"column value holds {value!r}, which is not a number")
        points.append((parse_ts(row["ts"]), None if value is None else float(value)))
    points.sort(key=lambda p: p[0])
    return points


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


def judge_points(check: Check, points: Sequence[tuple[dt.datetime, float | None]]) -> Verdict:
    """An anomaly verdict on a series whose last point is the one judged."""
    if not points:
        raise ShapeError("no data: the query returned no row")
    judgement = anomaly.judge(
        points,
        seasonality=str(check.seasonality),
        direction=str(check.direction),
        sensitivity=check.sensitivity,
        low=check.min,
        high=check.max,
    )
    status = Status.ALERT if judgement.anomalous else Status.OK
    clean = [(t, v) for t, v in points if v is not None and math.isfinite(v)]
    return Verdict(status, judgement.message, judgement.value, judgement.expected, clean)


def judge(
    check: Check, result: QueryResult, now: dt.datetime, past_values: Sequence[tuple[dt.datetime, float]] = ()
) -> Verdict:
    """The verdict for one check's result; `past_values` are its earlier values, for single-value anomaly checks
    (those recorded after `now`, by runs at a later --now, are not its past and are left out).

    Raises ShapeError when the result does not fit the check type."""
    if check.type is CheckType.ROWS:
        return judge_rows(result)
    if check.type is CheckType.THRESHOLD:
        return judge_threshold(check, result)
    if {"ts", "value"} <= set(result.columns):
        return judge_points(check, series(result))
    return judge_points(check, [*((t, v) for t, v in past_values if t <= now), (now, metric(result))])
